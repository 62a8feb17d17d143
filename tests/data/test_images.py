"""Image data: digit scenes are deterministic and their captions say what is where; image files
and COCO caption files are read, and every bad one becomes a one-line UserError naming it."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from any2seq.data.digits import digit_scans
from any2seq.data.images import COLS, ROWS, digit_scenes, read_coco, read_image
from any2seq.errors import UserError


def parse(caption: str) -> list[tuple[str, int, int, int]]:
    """"large 7 top left and ..." -> [(size, digit, row, col), ...]."""
    out = []
    for part in caption.split(" and "):
        size, digit, row, col = part.split()
        out.append((size, int(digit), ROWS.index(row), COLS.index(col)))
    return out


def test_captions_name_the_cells_that_hold_ink_in_reading_order():
    canvas = 48
    cell = canvas // 3
    for image, caption in digit_scenes("test", 60, seed=3, canvas=canvas, max_digits=4):
        assert image.shape == (1, canvas, canvas) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        named = parse(caption)
        assert 1 <= len(named) <= 4
        cells = [(r, c) for _, _, r, c in named]
        assert cells == sorted(cells) and len(set(cells)) == len(cells)  # reading order, one digit a cell
        ink = image[0].reshape(3, cell, 3, cell).sum((1, 3)) > 0.5
        assert {tuple(rc) for rc in np.argwhere(ink)} == set(cells)
        for size, _, r, c in named:  # a large digit covers more of its cell than a small one
            rows, cols = np.nonzero(image[0, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] > 0.05)
            extent = max(np.ptp(rows), np.ptp(cols)) + 1
            assert (extent > 0.75 * cell) == (size == "large"), (caption, size, extent)


def test_scenes_are_deterministic_and_a_larger_n_extends_a_smaller_one():
    a = digit_scenes("train", 5, seed=1)
    b = digit_scenes("train", 8, seed=1)
    assert [c for _, c in a] == [c for _, c in b[:5]]
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(a, b))
    assert [c for _, c in digit_scenes("train", 5, seed=2)] != [c for _, c in a]


def test_splits_draw_from_disjoint_scans():
    train, test = digit_scans("train").images, digit_scans("test").images
    flat = {im.tobytes() for im in train}
    assert not any(im.tobytes() in flat for im in test)


def png(width: int, height: int, mode: str = "L", value: int = 200) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height), value).save(buf, format="PNG")
    return buf.getvalue()


def test_read_image_from_path_and_bytes_resizes_and_converts(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png(30, 20, "RGB", (255, 0, 0)))
    grey = read_image(path, channels=1, size=16)
    assert grey.shape == (1, 16, 16) and grey.dtype == np.float32
    assert np.allclose(grey, 76 / 255, atol=2 / 255)  # ITU-R 601 luma of pure red
    rgb = read_image(path.read_bytes(), channels=3)
    assert rgb.shape == (3, 20, 30) and np.allclose(rgb[0], 1.0) and np.allclose(rgb[1:], 0.0)


@pytest.mark.parametrize("data, message", [
    (b"", "not a readable image"),
    (b"GIF89a\x00", "not a readable image"),
    (b"plain text, not an image\n", "not a readable image"),
    (png(8, 8)[:40], "not a readable image"),
])
def test_bad_images_name_the_file(tmp_path, data, message):
    path = tmp_path / "bad.png"
    path.write_bytes(data)
    with pytest.raises(UserError, match=f"^{path}: {message}"):
        read_image(path)
    with pytest.raises(UserError, match=f"^upload: {message}"):
        read_image(data)


def test_a_missing_image_is_named(tmp_path):
    with pytest.raises(UserError, match="nope.png: no such image file"):
        read_image(tmp_path / "nope.png")


def write_coco(root, images: list[dict], annotations: list[dict], name: str = "train.json"):
    (root / name).write_text(json.dumps({"images": images, "annotations": annotations}))
    return root / name


def test_read_coco_pairs_every_caption_with_its_image(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "images" / name).write_bytes(png(10, 10))
    path = write_coco(tmp_path, [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
                      [{"image_id": 1, "caption": "a  grey\nsquare"}, {"image_id": 2, "caption": "another"},
                       {"image_id": 1, "caption": "the same square"}])
    pairs = read_coco(path, tmp_path / "images")
    assert [(p.name, c) for p, c in pairs] == [("a.png", "a grey square"), ("b.png", "another"),
                                               ("a.png", "the same square")]


@pytest.mark.parametrize("content, message", [
    ("{not json", r"train.json:1: not valid JSON"),
    ("[]", "must hold a JSON object"),
    (json.dumps({"images": []}), "the file has no 'annotations' key"),
    (json.dumps({"images": [{"file_name": "a.png"}], "annotations": []}), r"images\[0\] has no 'id' key"),
    (json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1}]}),
     r"annotations\[0\] has no 'caption' key"),
    (json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 2, "caption": "x"}]}),
     "image_id 2 is not in 'images'"),
    (json.dumps({"images": [{"id": 1, "file_name": "gone.png"}], "annotations": [{"image_id": 1, "caption": "x"}]}),
     "gone.png' does not exist"),
    (json.dumps({"images": [{"id": 1, "file_name": 5}], "annotations": []}), "'file_name' must be str, got int"),
])
def test_bad_caption_files_name_the_file_and_key(tmp_path, content, message):
    (tmp_path / "train.json").write_text(content)
    with pytest.raises(UserError, match=message) as error:
        read_coco(tmp_path / "train.json", tmp_path)
    assert str(error.value).startswith(str(tmp_path / "train.json")) and "\n" not in str(error.value)
