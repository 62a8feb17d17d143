"""Fuzzing the readers of user files: arbitrary bytes, and valid WAV/PNG/GIF/JPEG files with bytes
flipped, cut, inserted or deleted, either read as documented (shape, dtype, range) or raise a one-line
``UserError``; any other exception is a bug. The same for COCO caption files of random JSON.
"""
from __future__ import annotations

import io
import json
import shutil
import struct
import tempfile
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from any2seq.data.audio import read_wav
from any2seq.data.images import read_coco, read_image
from any2seq.data.video import read_frames
from any2seq.errors import UserError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- valid files to damage --------------------------------------------------------------------------

def wav_bytes(samples, channels: int = 1, width: int = 2, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(channels), w.setsampwidth(width), w.setframerate(rate)
        w.writeframes(np.repeat(np.asarray(samples, f"<i{width}"), channels).tobytes())
    return buffer.getvalue()


def image_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(mode: str, width: int = 7, height: int = 5) -> Image.Image:
    pixels = (np.arange(width * height).reshape(height, width) * 7 % 256).astype(np.uint8)
    return Image.fromarray(pixels).convert(mode)


SAMPLES = (np.sin(np.arange(120) / 3) * 20000).astype(np.int16)
WAVS = [wav_bytes(SAMPLES), wav_bytes(SAMPLES[:3]), wav_bytes(SAMPLES, channels=2), wav_bytes(SAMPLES, width=4),
        wav_bytes(SAMPLES, rate=16000)]
FRAMES = [gradient("L", 6, 6), gradient("L", 6, 6).point(lambda v: 255 - v), gradient("L", 6, 6).point(lambda v: v // 2)]
IMAGES = [image_bytes(gradient("L"), "PNG"), image_bytes(gradient("RGB"), "PNG"), image_bytes(gradient("RGBA"), "PNG"),
          image_bytes(gradient("P"), "PNG", transparency=0), image_bytes(gradient("L"), "JPEG"),
          image_bytes(gradient("RGB"), "BMP"),
          image_bytes(FRAMES[0], "GIF", save_all=True, append_images=FRAMES[1:], duration=50, loop=0)]
INTERESTING = [0, 1, 2, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 4096, 4097]


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed file with 1-4 edits, half of them in its first 64 bytes, where the headers are."""
    data = bytearray(draw(st.sampled_from(seeds)))

    def position(end: int) -> int:
        return draw(st.one_of(st.integers(0, min(end, 63)), st.integers(0, end)))

    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "byte", "int", "truncate", "insert", "delete"]))
        if op == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif op == "insert":
            i = position(len(data))
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif not data:
            continue
        elif op == "flip":
            data[position(len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            data[position(len(data) - 1)] = draw(st.integers(0, 255))
        elif op == "delete":
            i = position(len(data) - 1)
            del data[i: i + draw(st.integers(1, 16))]
        else:  # a size or count field set to an edge value
            i = position(len(data) - 1)
            fmt = draw(st.sampled_from(["<I", ">I", "<H", ">H"]))
            value = draw(st.sampled_from(INTERESTING)) & (0xFFFF if fmt.endswith("H") else 0xFFFFFFFF)
            packed = struct.pack(fmt, value)
            data[i: i + len(packed)] = packed
    return bytes(data)


def noise(magic: list[bytes]):
    """Random bytes, bare or behind a format's magic number (so the decoder gets past its first check)."""
    return st.one_of(st.binary(max_size=400),
                     st.builds(lambda m, rest: m + rest, st.sampled_from(magic), st.binary(max_size=400)))


# ---- WAV ------------------------------------------------------------------------------------------

def test_the_wav_seeds_read_as_documented():
    assert read_wav(WAVS[0]).shape == (120,)
    np.testing.assert_allclose(read_wav(WAVS[2]), read_wav(WAVS[0]))  # stereo mixed down
    np.testing.assert_allclose(read_wav(WAVS[3]) * 2**16, read_wav(WAVS[0]))  # 16-bit values in 32-bit samples
    assert read_wav(WAVS[4]).shape == (60,)  # 16 kHz resampled to 8 kHz


@FUZZ
@given(data=st.one_of(mutated([WAVS[0]] * 3 + WAVS[1:]), noise([b"RIFF", b"RIFF\xff\xff\xff\xffWAVEfmt ", WAVS[0][:36]])))
@example(data=b"")
@example(data=WAVS[0][:44])  # the header alone: no frames
@example(data=WAVS[0][:-1])  # half a sample cut off
def test_read_wav_returns_mono_float_audio_or_raises_user_error(data):
    try:
        audio = read_wav(data, 8000, name="fuzz.wav")
    except UserError as e:
        assert str(e).startswith("fuzz.wav: ") and "\n" not in str(e)
        event("refused")
        return
    event("read")
    assert isinstance(audio, np.ndarray) and audio.dtype == np.float32 and audio.ndim == 1 and audio.size >= 1
    assert np.all(audio >= -1.0) and np.all(audio <= 1.0)


def soundfile_bytes(fmt: str, subtype: str) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([SAMPLES, SAMPLES[::-1]], 1).astype(np.float32) / 32768, 16000, format=fmt,
                    subtype=subtype)
    return buffer.getvalue()


@FUZZ
@given(data=st.one_of(mutated([soundfile_bytes("FLAC", "PCM_16"), soundfile_bytes("OGG", "VORBIS"),
                               soundfile_bytes("WAV", "FLOAT"), soundfile_bytes("WAVEX", "PCM_24")]),
                      noise([b"fLaC", b"OggS"])))
def test_flac_ogg_and_float_wav_read_or_raise_user_error(data):
    """libsndfile decodes what is not a RIFF/WAVE file: its failures must be one-line UserErrors too."""
    try:
        audio = read_wav(data, 8000, name="fuzz.flac")
    except UserError as e:
        assert str(e).startswith("fuzz.flac: ") and "\n" not in str(e)
        event("refused")
        return
    event("read")
    assert audio.dtype == np.float32 and audio.ndim == 1 and audio.size >= 1
    assert np.all(audio >= -1.0) and np.all(audio <= 1.0)


# ---- images and frames --------------------------------------------------------------------------

IMAGE_MAGIC = [b"\x89PNG\r\n\x1a\n", b"GIF89a", b"GIF87a", b"\xff\xd8\xff", b"BM", b"P5\n", b"II*\x00",
               IMAGES[0][:33], IMAGES[-1][:13]]


def check_pixels(x: np.ndarray) -> None:
    assert isinstance(x, np.ndarray) and x.dtype == np.float32
    assert np.all(np.isfinite(x)) and x.min() >= 0.0 and x.max() <= 1.0


@FUZZ
@given(data=st.one_of(mutated(IMAGES), noise(IMAGE_MAGIC)), channels=st.sampled_from([1, 3]),
       size=st.sampled_from([None, 4, 9]))
@example(data=b"", channels=1, size=None)
@example(data=IMAGES[0][:40], channels=1, size=None)  # the header and part of the data
def test_read_image_returns_chw_floats_or_raises_user_error(data, channels, size):
    try:
        image = read_image(data, channels, size, name="fuzz.png")
    except UserError as e:
        assert str(e).startswith("fuzz.png: ") and "\n" not in str(e)
        event("refused")
        return
    event("read")
    check_pixels(image)
    assert image.ndim == 3 and image.shape[0] == channels and min(image.shape[1:]) >= 1
    if size is not None:
        assert image.shape[1:] == (size, size)


@FUZZ
@given(data=st.one_of(mutated(IMAGES), noise(IMAGE_MAGIC)), channels=st.sampled_from([1, 3]),
       size=st.sampled_from([None, 4, (3, 5)]))
@example(data=b"", channels=1, size=None)
@example(data=IMAGES[-1][: len(IMAGES[-1]) // 2], channels=1, size=None)  # an animation cut mid-frame
def test_read_frames_returns_fchw_floats_or_raises_user_error(data, channels, size):
    try:
        frames = read_frames(data, channels, size)
    except UserError as e:
        assert str(e).startswith("upload: ") and "\n" not in str(e)
        event("refused")
        return
    event("read")
    check_pixels(frames)
    assert frames.ndim == 4 and frames.shape[0] >= 1 and frames.shape[1] == channels and min(frames.shape[2:]) >= 1
    if size is not None:
        assert frames.shape[2:] == ((size, size) if isinstance(size, int) else size)


# ---- COCO caption files -----------------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=10)
IMAGE_FILES = {"a.png": IMAGES[0], "b.png": b"not an image", "sub/c.png": IMAGES[1]}
IDS = st.one_of(st.integers(0, 3), st.sampled_from(["1", "a", ""]))
VALID_NAMES = st.sampled_from(sorted(IMAGE_FILES))
NAMES = st.one_of(VALID_NAMES, VALID_NAMES, VALID_NAMES,
                  st.sampled_from(["sub", "missing.png", "", ".", "..", "../images/a.png", "x" * 300,
                                   "x" * 300 + "/a.png", "nul\x00.png", " a.png"]),
                  st.text(max_size=10))
WORDS = st.sampled_from(["a dog runs", " two  cats\tsit ", "\u00e9t\u00e9 \u2028 ok", "x"])
CAPTIONS = st.one_of(WORDS, WORDS, st.text(max_size=20), st.sampled_from(["", "  \n", "\ud800"]))


@st.composite
def coco_documents(draw) -> dict:
    """A well-formed COCO caption document over IMAGE_FILES' names, often with one thing broken."""
    images = [{"id": draw(IDS), "file_name": draw(NAMES)} for _ in range(draw(st.integers(1, 3)))]
    ids = [image["id"] for image in images] or [0]
    notes = [{"image_id": draw(st.sampled_from(ids)), "caption": draw(CAPTIONS)} for _ in range(draw(st.integers(1, 4)))]
    document = {"images": images, "annotations": notes}
    damage = draw(st.sampled_from(["none"] * 5 + ["drop", "retype", "replace", "unknown id", "top"]))
    entries = [(key, i) for key in document for i in range(len(document[key]))]
    if damage == "top":  # a top-level key missing or of another kind
        key = draw(st.sampled_from(sorted(document)))
        if draw(st.booleans()):
            del document[key]
        else:
            document[key] = draw(JSON)
    elif damage == "unknown id":
        notes.append({"image_id": draw(st.sampled_from([99, "99", -1])), "caption": "a caption"})
    elif damage != "none" and entries:
        key, i = draw(st.sampled_from(entries))
        if damage == "replace":  # the whole entry not an object, or any object
            document[key][i] = draw(JSON)
        else:
            field = draw(st.sampled_from(sorted(document[key][i])))
            if damage == "drop":
                del document[key][i][field]
            else:
                document[key][i][field] = draw(JSON)
    return document


@st.composite
def coco_files(draw) -> bytes:
    """The caption file's bytes: a COCO document (whole, damaged or cut short), any JSON, or not JSON."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return draw(st.text(max_size=100)).encode(draw(st.sampled_from(["utf-8", "utf-16", "latin-1"])),
                                                  errors="replace")
    if kind == 2:
        return json.dumps(draw(JSON)).encode()
    text = json.dumps(draw(coco_documents()), ensure_ascii=draw(st.booleans()))
    if kind == 3:  # cut short
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode("utf-8", errors="surrogatepass")


@FUZZ
@given(caption_file=coco_files(),
       present=st.one_of(st.just(sorted(IMAGE_FILES)), st.lists(st.sampled_from(sorted(IMAGE_FILES)), unique=True)),
       image_dir_is_file=st.booleans())
@example(caption_file=b"[" * 100_000, present=[], image_dir_is_file=False)  # nested past the recursion limit
@example(caption_file=json.dumps({"images": [{"id": 1, "file_name": "x" * 300}],
                                  "annotations": [{"image_id": 1, "caption": "a dog"}]}).encode(),
         present=[], image_dir_is_file=False)  # a name too long for the file system
@example(caption_file=json.dumps({"images": [{"id": 1, "file_name": "a.png"}, {"id": "1", "file_name": "b.png"}],
                                  "annotations": [{"image_id": 1, "caption": " a \t dog "},
                                                  {"image_id": "1", "caption": "not a picture"}]}).encode(),
         present=["a.png", "b.png"], image_dir_is_file=False)
def test_read_coco_returns_pairs_or_raises_user_error(caption_file, present, image_dir_is_file):
    root = Path(tempfile.mkdtemp(prefix="coco-"))
    try:
        (root / "captions.json").write_bytes(caption_file)
        image_dir = root / "images"
        if image_dir_is_file:
            image_dir.write_bytes(b"a file, not a folder")
        else:
            (image_dir / "sub").mkdir(parents=True)
            for name in present:
                (image_dir / name).write_bytes(IMAGE_FILES[name])
        try:
            pairs = read_coco(root / "captions.json", image_dir)
        except UserError as e:
            assert str(e).startswith(str(root / "captions.json")) and "\n" not in str(e)
            event("refused")
            return
        event("read")
        document = json.loads(caption_file)
        names = {image["id"]: image["file_name"] for image in document["images"]}
        expected = [(image_dir / names[note["image_id"]], " ".join(note["caption"].split()))
                    for note in document["annotations"] if note["caption"].split()]
        assert pairs == expected and pairs
        assert all(path.is_file() for path, _ in pairs)
    finally:
        shutil.rmtree(root)
