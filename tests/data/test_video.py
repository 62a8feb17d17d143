"""Video data: moving digits are deterministic and bounce inside the canvas, captions match the
motion, and the frame readers turn every bad file into a one-line UserError that names it."""
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from any2seq.data.video import (
    DIRECTIONS,
    bounce,
    described_videos,
    moving_digits,
    read_frames,
    strip_label,
    write_frames,
    write_gif,
    write_strip,
)
from any2seq.errors import UserError


def centroids(clip: np.ndarray) -> np.ndarray:
    """(F, 1, H, W) -> (F, 2) the (y, x) centre of mass of each frame."""
    mass = clip[:, 0]
    ys, xs = np.indices(mass.shape[1:])
    total = mass.sum((1, 2))
    return np.stack([(mass * ys).sum((1, 2)) / total, (mass * xs).sum((1, 2)) / total], 1)


def test_moving_digits_are_deterministic_in_range_and_extend_with_n():
    a = moving_digits("train", 6, seed=3, frames=8)
    assert a.shape == (6, 8, 1, 32, 32) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1 and a.max() > 0.5
    np.testing.assert_array_equal(a, moving_digits("train", 6, seed=3, frames=8))
    np.testing.assert_array_equal(a[:4], moving_digits("train", 4, seed=3, frames=8))
    assert not np.array_equal(a, moving_digits("train", 6, seed=4, frames=8))
    assert not np.array_equal(a, moving_digits("valid", 6, seed=3, frames=8))


def test_a_digit_stays_whole_inside_the_canvas_and_bounces():
    clips = moving_digits("valid", 40, seed=0, frames=20, canvas=24, digits=(1,), size=12)
    mass = clips.sum((2, 3, 4))  # (n, F): a digit cut by an edge would lose mass
    np.testing.assert_allclose(mass, mass[:, :1].repeat(20, 1), rtol=1e-5)
    turns = 0
    for clip in clips:
        moves = np.diff(centroids(clip), axis=0)  # (F-1, 2)
        turns += np.any((moves[1:] * moves[:-1]) < -1e-6)  # a coordinate changed direction: a bounce
    assert turns > 10


def test_bounce_reflects_off_both_edges():
    path = bounce(np.array([1.0, 15.0]), np.array([3.0, 2.0]), frames=30, room=16)
    assert path.min() >= 0 and path.max() <= 16
    assert path[:6, 0].tolist() == [1, 4, 7, 10, 13, 16] and path[6, 0] == 13  # off the far edge
    assert path[:3, 1].tolist() == [15, 15, 13]  # 17 folds back to 15 off the far edge


def test_described_videos_say_where_the_digit_goes():
    pairs = described_videos("test", 48, seed=1)
    assert {text.split()[3] for text, _ in pairs} == set(DIRECTIONS)
    for text, clip in pairs:
        word, label, verb, direction, speed = text.split()
        assert (word, verb) == ("digit", "moving") and label.isdigit() and speed in ("slowly", "quickly")
        assert clip.shape == (10, 1, 32, 32) and clip.dtype == np.float32
        mass = clip.sum((1, 2, 3))
        np.testing.assert_allclose(mass, mass[0], rtol=1e-5)  # whole inside every frame: no bounce needed
        travel = centroids(clip)[-1] - centroids(clip)[0]  # (dy, dx)
        want = np.array(DIRECTIONS[direction])
        assert np.all(np.sign(np.round(travel)) == want), (text, travel)
        assert np.abs(travel).max() >= (7 if speed == "slowly" else 15)
    assert described_videos("test", 3, seed=1)[2][0] == pairs[2][0]


# ---- readers ---------------------------------------------------------------------------------------

def write_png(path, height=8, width=8, value=128, mode="L"):
    Image.new(mode, (width, height), value if mode == "L" else (value,) * 3).save(path)
    return path


def error(path, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        read_frames(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_read_a_folder_of_images_sorted_by_name(tmp_path):
    for i, name in enumerate(["b.png", "a.jpg", "c.gif"]):
        write_png(tmp_path / name, value=40 * (i + 1), mode="RGB")
    (tmp_path / ".DS_Store").write_bytes(b"junk")  # dot-files are skipped
    frames = read_frames(tmp_path)
    assert frames.shape == (3, 1, 8, 8) and frames.dtype == np.float32
    np.testing.assert_allclose(frames[:, 0, 0, 0], [80 / 255, 40 / 255, 120 / 255], atol=2 / 255)  # a, b, c
    assert read_frames(tmp_path, channels=3, size=(4, 6)).shape == (3, 3, 4, 6)


def test_read_an_animated_gif_and_its_bytes(tmp_path):
    clip = moving_digits("train", 1, seed=0, frames=6)[0]
    write_gif(tmp_path / "clip.gif", clip)
    frames = read_frames(tmp_path / "clip.gif")
    np.testing.assert_allclose(frames, clip, atol=0.5 / 255 + 1e-6)  # grey GIFs are exact to rounding
    np.testing.assert_array_equal(read_frames((tmp_path / "clip.gif").read_bytes()), frames)
    assert read_frames(tmp_path / "clip.gif", size=16).shape == (6, 1, 16, 16)


def test_bad_inputs_are_one_line_errors_that_name_the_file(tmp_path):
    assert "nowhere" in error(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "empty" in error(tmp_path / "empty")

    folder = tmp_path / "frames"
    folder.mkdir()
    write_png(folder / "0.png")
    (folder / "1.txt").write_text("not an image\n")
    assert "1.txt" in error(folder)

    (folder / "1.txt").unlink()
    good = io.BytesIO()
    Image.new("L", (8, 8), 3).save(good, format="PNG")
    (folder / "1.png").write_bytes(good.getvalue()[:40])  # cut short
    assert "1.png" in error(folder)

    write_png(folder / "1.png", height=8, width=10)
    message = error(folder)
    assert "1.png" in message and "10x8" in message and "8x8" in message

    (tmp_path / "broken.gif").write_bytes(b"GIF89a" + bytes(20))
    assert "broken.gif" in error(tmp_path / "broken.gif")

    write_png(tmp_path / "wide.png", height=1, width=5000)  # a small file that claims a huge frame
    assert "wide.png" in error(tmp_path / "wide.png")


def valid_gif() -> bytes:
    buffer = io.BytesIO()
    images = [Image.new("L", (6, 6), v) for v in (0, 90, 180)]
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), flips=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
       as_gif=st.booleans())
def test_fuzzed_files_raise_only_user_errors(tmp_path, data, flips, as_gif):
    blob = bytearray(valid_gif()) if as_gif else bytearray(data)
    for position, value in flips:  # a damaged real GIF reaches deeper into the decoder than noise
        if position < len(blob):
            blob[position] = value
    path = tmp_path / "fuzz.gif"
    path.write_bytes(bytes(blob))
    try:
        frames = read_frames(path)
    except UserError as e:
        assert "fuzz.gif" in str(e) and "\n" not in str(e)
    else:
        assert frames.ndim == 4 and frames.dtype == np.float32


# ---- writers ---------------------------------------------------------------------------------------

def test_writers_make_readable_files_and_leave_no_temporary_files(tmp_path):
    clip = moving_digits("train", 1, seed=2, frames=5)[0]  # (5, 1, 32, 32)
    write_strip(tmp_path / "strip.png", [clip, clip[:3], np.repeat(clip, 3, axis=1)], ["input", "predicted", "rgb"])
    with Image.open(tmp_path / "strip.png") as strip:
        assert strip.format == "PNG" and strip.width >= 5 * 64 and strip.height >= 3 * 64
    write_gif(tmp_path / "clip.gif", clip, scale=2)
    assert read_frames(tmp_path / "clip.gif").shape == (5, 1, 64, 64)
    paths = write_frames(tmp_path / "frames", clip)
    assert [p.name for p in paths][:2] == ["frame_000.png", "frame_001.png"]
    np.testing.assert_allclose(read_frames(tmp_path / "frames"), clip, atol=0.5 / 255 + 1e-6)
    assert not [p for p in tmp_path.rglob(".*")]


def test_a_strip_label_keeps_a_visible_gap_between_words():
    """Pillow's default font (FreeType, 10 px, since Pillow 10.1) advances 2 px for a space: drawn
    after "left", "down-left slowly" read as "down-leftslowly". The label gets wider word gaps."""
    from PIL import ImageDraw

    label = strip_label("digit 2 moving down-left slowly")
    assert label.split() == ["digit", "2", "moving", "down-left", "slowly"]  # the words, in order, whole
    font = ImageDraw.Draw(Image.new("RGB", (1, 1))).getfont()  # the font write_strip draws with
    gap = font.getlength(strip_label("left slowly")) - font.getlength("leftslowly")
    assert gap >= font.getlength("n") / 2  # half a letter or more, whatever the Pillow version's default font
    assert strip_label("1 predicted\nline two") == strip_label("1 predicted line two")  # one line, as drawn
