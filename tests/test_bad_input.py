"""Bad input through the real command line: one line on stderr naming the file, line or key;
no traceback; exit status 2; and the checkpoints already on disk left byte for byte as they were.

Every row of CASES runs ``python -m any2seq ...`` in a fresh workspace holding a tiny data set
(``data/``), its config (``tiny.yaml``) and a model trained from it for two steps (``run/``).
Every row of MEDIA_CASES does the same for image, audio and video models and their data: bad WAVs,
images and frame folders, another task's files, and broken COCO caption data (see media_base).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "multi30k"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
TINY = """\
data: {root: data, max_len: 64}
tokenizer: {vocab_size: 150}
model:
  encoder: {kind: transformer, d_model: 16, layers: 1, heads: 2, ff: 32, dropout: 0.0}
  decoder: {kind: transformer, d_model: 16, layers: 1, heads: 2, ff: 32, dropout: 0.0}
train: {batch_tokens: 256, lr: 3.0e-3, warmup: 2, max_steps: 2, valid_every: 1, log_every: 1,
        valid_bleu: false, metric: loss, threads: 1}
"""


def any2seq(*args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "any2seq", *args], cwd=cwd, input=stdin, env=ENV,
                          capture_output=True, timeout=300)


def digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path; a run's ``.lock`` records the pid of
    the last `train` to start in it (train/lock.py), so it is left out."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def write_workspace(root: Path) -> None:
    """``data/{train,val}.{de,en}``: the first 60 and 10 lines of Multi30k; ``tiny.yaml`` to train on them."""
    (root / "data").mkdir(parents=True)
    for split, n in (("train", 60), ("val", 10)):
        for lang in ("de", "en"):
            with gzip.open(DATA / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
                lines = [next(f) for _ in range(n)]
            (root / "data" / f"{split}.{lang}").write_text("".join(lines), encoding="utf-8")
    (root / "tiny.yaml").write_text(TINY)


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> Path:
    """A workspace with data, config and ``run/``: a model trained for two steps, built once."""
    root = tmp_path_factory.mktemp("base")
    write_workspace(root)
    proc = any2seq("train", "tiny.yaml", "--out", "run", "--no-progress", cwd=root)
    assert proc.returncode == 0, proc.stderr.decode()
    shutil.rmtree(root / "data" / ".cache")  # its key holds this path; each copy encodes afresh
    return root


@pytest.fixture
def ws(base, tmp_path) -> Path:
    shutil.copytree(base, tmp_path, dirs_exist_ok=True)
    return tmp_path


# --- setups: each breaks one thing in the workspace --------------------------------------------


def config(text: str) -> Callable[[Path], None]:
    return lambda ws: (ws / "bad.yaml").write_text(textwrap.dedent(text))


def mkdir(name: str) -> Callable[[Path], None]:
    return lambda ws: (ws / name).mkdir(parents=True)


def write_bytes(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda ws: (ws / name).write_bytes(data)


def remove(name: str) -> Callable[[Path], None]:
    return lambda ws: (ws / name).unlink()


def extra_line(name: str) -> Callable[[Path], None]:
    def setup(ws: Path):
        with open(ws / name, "a", encoding="utf-8") as f:
            f.write("Noch eine Zeile.\n")
    return setup


def bad_byte(name: str, line: int) -> Callable[[Path], None]:
    def setup(ws: Path):
        lines = (ws / name).read_bytes().splitlines(keepends=True)
        lines[line - 1] = b"caf\xe9 " + lines[line - 1]  # Latin-1, not UTF-8
        (ws / name).write_bytes(b"".join(lines))
    return setup


def empty_train(ws: Path):
    for lang in ("de", "en"):
        (ws / f"data/train.{lang}").write_bytes(b"")


def corrupt_gzip(ws: Path):
    packed = gzip.compress((ws / "data/train.de").read_bytes())
    (ws / "data/train.de").unlink()
    (ws / "data/train.de.gz").write_bytes(packed[: len(packed) // 2])


def truncate(name: str) -> Callable[[Path], None]:
    def setup(ws: Path):
        data = (ws / name).read_bytes()
        (ws / name).write_bytes(data[: len(data) // 2])
    return setup


def card_version(version: int) -> Callable[[Path], None]:
    def setup(ws: Path):
        card = json.loads((ws / "run/model.json").read_text())
        (ws / "run/model.json").write_text(json.dumps({**card, "format_version": version, "any2seq_version": "9.0"}))
    return setup


class Payload:
    """Unpickling this creates ``unpickled`` in the working directory: proof that it ran."""

    def __reduce__(self):
        return os.mkdir, ("unpickled",)


def pickled(name: str, protocol: int) -> Callable[[Path], None]:
    return write_bytes(name, pickle.dumps({"weight": Payload()}, protocol=protocol))


def torch_saved(name: str) -> Callable[[Path], None]:
    def setup(ws: Path):
        import torch

        torch.save({"weight": Payload()}, ws / name)
    return setup


def last_checkpoint(ws: Path) -> Path:
    return sorted((ws / "run/checkpoints").glob("step_*"))[-1]


def pickled_checkpoint(ws: Path):
    (last_checkpoint(ws) / "model.safetensors").write_bytes(pickle.dumps({"w": Payload()}, protocol=4))


# --- files for image, audio and video models ---------------------------------------------------


def wav(samples=None, channels: int = 1, width: int = 2, rate: int = 8000) -> bytes:
    """A WAV file in memory (16-bit mono 8 kHz, what speech models read, unless told otherwise)."""
    import numpy as np

    samples = (np.sin(np.arange(2000) / 5) * 8000).astype(np.int64) if samples is None else np.asarray(samples)
    if width == 1:
        pcm = (samples // 256 + 128).astype(np.uint8).tobytes()
    elif width == 3:  # no numpy dtype: three little-endian bytes a sample
        pcm = np.stack([(samples * 256 >> s) & 0xFF for s in (0, 8, 16)], -1).astype(np.uint8).tobytes()
    else:
        pcm = samples.astype(f"<i{width}").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(channels), w.setsampwidth(width), w.setframerate(rate)
        w.writeframes(b"".join(pcm[i: i + width] * channels for i in range(0, len(pcm), width)))
    return buffer.getvalue()


def wav_field(offset: int, value: int) -> bytes:
    """A good WAV with one 16-bit field of its fmt chunk (which starts at byte 20) overwritten."""
    data = bytearray(wav())
    struct.pack_into("<H", data, offset, value)
    return bytes(data)


def png(width: int = 24, height: int = 24, value: int | None = 128) -> bytes:
    """A grey PNG of one ``value``, or of random pixels for None (then its data is most of the file)."""
    import numpy as np
    from PIL import Image

    pixels = (np.full((height, width), value, np.uint8) if value is not None
              else np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_0x0() -> bytes:
    """A PNG whose header claims 0x0 pixels (Pillow will not write one): signature, IHDR, empty IDAT, IEND."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def gif(frames: int = 6, side: int = 16) -> bytes:
    from PIL import Image

    images = [Image.new("L", (side, side), 40 * i) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=50, loop=0)
    return buffer.getvalue()


# --- the catalogue -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    args: list[str]
    expect: list[str]  # substrings of the one stderr line
    setup: Callable[[Path], None] | None = None
    stdin: bytes = b""


TRAIN = ["train", "--no-progress"]
TRANSLATE = ["translate", "--model", "run"]
EVALUATE = ["evaluate", "--model", "run", "--src", "data/val.de", "--ref", "data/val.en"]
SENTENCE = "Ein Hund läuft über die Wiese.\n".encode()

CASES = {
    # the command line itself
    "unknown-flag": Case([*TRANSLATE, "--bogus"], ["any2seq translate: error:", "--bogus", "--help"]),
    # the config file
    "config-missing": Case([*TRAIN, "nope.yaml"], ["nope.yaml", "no such config file"]),
    "config-is-a-directory": Case([*TRAIN, "confdir"], ["confdir", "cannot read config"], mkdir("confdir")),
    "config-not-utf8": Case([*TRAIN, "bad.yaml"], ["bad.yaml:2", "UTF-8"],
                            write_bytes("bad.yaml", b"train:\n  lr: caf\xe9\n")),
    "yaml-syntax": Case([*TRAIN, "bad.yaml"], ["bad.yaml:4", "YAML syntax error", "flow sequence at line 3"],
                        config("train:\n  lr: 3e-3\n  betas: [0.9, 0.98\nmodel: {}\n")),
    "top-level-list": Case([*TRAIN, "bad.yaml"], ["bad.yaml", "mapping"], config("- train\n- model\n")),
    "unknown-top-key": Case([*TRAIN, "bad.yaml"], ["bad.yaml", "trian", "unknown key", "train, decode"],
                            config("trian: {lr: 1.0}\n")),
    "unknown-nested-key": Case([*TRAIN, "bad.yaml"], ["bad.yaml", "model.encoder.d_modle", "valid keys", "d_model"],
                               config("model:\n  encoder: {d_modle: 32}\n")),
    "wrong-type": Case([*TRAIN, "bad.yaml"], ["bad.yaml", "train.lr", "expected a number", "fast"],
                       config("train:\n  lr: fast\n")),
    "batch-tokens-zero": Case([*TRAIN, "bad.yaml"], ["train.batch_tokens", "positive"],
                              config("train: {batch_tokens: 0}\n")),
    "label-smoothing-range": Case([*TRAIN, "bad.yaml"], ["train.label_smoothing", "[0, 1)"],
                                  config("train: {label_smoothing: 1.5}\n")),
    "bad-encoder-kind": Case([*TRAIN, "bad.yaml"], ["model.encoder.kind", "'lstmm'", "transformer", "gru"],
                             config("model:\n  encoder: {kind: lstmm}\n")),
    "heads-do-not-divide": Case([*TRAIN, "bad.yaml"], ["model.decoder.d_model", "heads=4"],
                                config("model:\n  decoder: {d_model: 30, heads: 4}\n")),
    # --set
    "set-without-equals": Case([*TRAIN, "tiny.yaml", "--set", "train.lr"], ["--set train.lr", "KEY.PATH=VALUE"]),
    "set-unknown-key": Case([*TRAIN, "tiny.yaml", "--set", "train.lrr=1"],
                            ["--set train.lrr", "unknown key", "valid keys: seed"]),
    "set-bad-value": Case([*TRAIN, "tiny.yaml", "--set", "train.lr=fast"], ["--set train.lr", "expected a number"]),
    # training data
    "data-missing": Case([*TRAIN, "tiny.yaml", "--set", "data.root=nowhere"], ["data.train", "nowhere/train.de"]),
    "line-counts-differ": Case([*TRAIN, "tiny.yaml"], ["data/train.de", "60", "data/train.en", "61"],
                               extra_line("data/train.en")),
    "data-empty": Case([*TRAIN, "tiny.yaml"], ["data/train.de", "no data"], empty_train),
    "data-not-utf8": Case([*TRAIN, "tiny.yaml"], ["data/train.de:7", "UTF-8", "0xe9"],
                          bad_byte("data/train.de", 7)),
    "data-corrupt-gzip": Case([*TRAIN, "tiny.yaml"], ["data/train.de.gz", "gzip"], corrupt_gzip),
    # the run directory and --resume
    "run-exists": Case([*TRAIN, "tiny.yaml", "--out", "run"], ["run", "already holds a run", "--resume"]),
    "resume-nothing": Case([*TRAIN, "tiny.yaml", "--out", "fresh", "--resume"], ["fresh", "nothing to resume"]),
    "resume-other-config": Case([*TRAIN, "tiny.yaml", "--out", "run", "--resume", "--set", "model.encoder.layers=2"],
                                ["run/config.yaml", "model.encoder.layers", "--resume"]),
    "resume-pickled-checkpoint": Case([*TRAIN, "tiny.yaml", "--out", "run", "--resume"],
                                      ["run/checkpoints/step_00000002/model.safetensors", "pickle"],
                                      pickled_checkpoint),
    "out-not-writable": Case([*TRAIN, "tiny.yaml", "--out", "tiny.yaml/sub"], ["tiny.yaml/sub", "not writable"]),
    # the model directory
    "model-dir-missing": Case(["translate", "--model", "nowhere"], ["nowhere", "no such model directory"]),
    "evaluate-model-missing": Case(["evaluate", "--model", "nowhere", "--src", "data/val.de", "--ref", "data/val.en"],
                                   ["nowhere", "no such model directory"]),
    "model-weights-missing": Case(TRANSLATE, ["run/model.safetensors", "missing"], remove("run/model.safetensors"),
                                  SENTENCE),
    "model-other-version": Case(TRANSLATE, ["run/model.json", "format 99", "9.0"], card_version(99), SENTENCE),
    "weights-truncated": Case(TRANSLATE, ["run/model.safetensors", "truncated or corrupt"],
                              truncate("run/model.safetensors"), SENTENCE),
    "weights-random-bytes": Case(TRANSLATE, ["run/model.safetensors", "not a valid safetensors"],
                                 write_bytes("run/model.safetensors", os.urandom(4096)), SENTENCE),
    "weights-pickle-protocol-3": Case(TRANSLATE, ["run/model.safetensors", "pickle", "never unpickles"],
                                      pickled("run/model.safetensors", 3), SENTENCE),
    "weights-torch-save": Case(TRANSLATE, ["run/model.safetensors", "pickle", "never unpickles"],
                               torch_saved("run/model.safetensors"), SENTENCE),
    # search flags
    "beam-zero": Case([*TRANSLATE, "--beam", "0"], ["--beam", "at least 1"], stdin=SENTENCE),
    "workers-zero": Case([*TRANSLATE, "--workers", "0"], ["--workers", "integer >= 1, got 0"], stdin=SENTENCE),
    "batch-size-negative": Case([*TRANSLATE, "--batch-size", "-2"], ["--batch-size", "integer >= 0, got -2"],
                                stdin=SENTENCE),
    "top-p-range": Case([*TRANSLATE, "--sample", "--top-p", "1.5"], ["--top-p", "(0, 1]"], stdin=SENTENCE),
    "temperature-zero": Case([*TRANSLATE, "--sample", "--temperature", "0"], ["--temperature", "positive"],
                             stdin=SENTENCE),
    "n-best-over-beam": Case([*TRANSLATE, "--beam", "2", "--n-best", "3"], ["--n-best", "--beam 2"], stdin=SENTENCE),
    "stdin-not-utf8": Case(TRANSLATE, ["<stdin>:2", "UTF-8"], stdin=SENTENCE + b"caf\xe9\n"),
    "text-model-given-a-wav": Case(["predict", "--model", "run", "tone.wav"],
                                   ["translation model reads text lines from stdin, not files", "tone.wav"],
                                   write_bytes("tone.wav", wav())),
    # evaluate and average
    "evaluate-lengths-differ": Case(EVALUATE, ["data/val.de", "11", "data/val.en", "10"], extra_line("data/val.de")),
    "evaluate-src-missing": Case(["evaluate", "--model", "run", "--src", "missing.de", "--ref", "data/val.en"],
                                 ["missing.de", "no such file"]),
    "evaluate-hyps-not-writable": Case([*EVALUATE, "--hyps", "tiny.yaml/hyps.txt"],
                                       ["--hyps tiny.yaml/hyps.txt", "tiny.yaml is a file"]),
    "average-out-not-writable": Case(["average", "run", "--out", "tiny.yaml/avg"], ["tiny.yaml/avg", "not writable"]),
}


def assert_refused(ws: Path, case: Case, runs: list[str]) -> None:
    """Run the case in ``ws``: exit 2, one line holding every expected part, no traceback, ``runs`` unchanged."""
    if case.setup:
        case.setup(ws)
    before = {run: digest(ws / run) for run in runs}
    proc = any2seq(*case.args, cwd=ws, stdin=case.stdin)
    err = proc.stderr.decode("utf-8", errors="replace")
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    for part in case.expect:
        assert part in lines[0], lines[0]
    for run in runs:
        assert digest(ws / run) == before[run], f"the existing run {run} was changed"
    assert not (ws / "unpickled").exists(), "a pickle was loaded"


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_exit_2_and_touches_nothing(ws, case: Case):
    assert_refused(ws, case, ["run"])


# --- image, audio and video models ---------------------------------------------------------------
#
# MEDIA_CASES run in a fresh copy of another workspace: ``inputs/`` (good and bad files of every
# kind), tiny models trained by ``any2seq train`` from the repository's tiny configs for two steps
# (``speech/``, ``video/``, and ``caption/``, a captioner trained on ``coco/``, a COCO-format data
# set of a few PNGs), and configs whose data is broken by a case: ``bad_speech.yaml`` reads
# ``bad_fsdd/``, ``coco.yaml`` reads ``coco/``.

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIGS = REPO / "configs" / "tiny"
FSDD = REPO.parent / "shared" / "data" / "fsdd"  # what configs/tiny/speech.yaml names, from the repository
HAS_FSDD = (FSDD / "recordings").is_dir()


def has_captioning() -> bool:
    from any2seq import registry

    return "captioning" in registry.names("task")


HAS_CAPTIONING = has_captioning()
needs_fsdd = pytest.mark.skipif(not HAS_FSDD, reason=f"no Free Spoken Digit Dataset at {FSDD}")
needs_captioning = pytest.mark.skipif(not HAS_CAPTIONING, reason="the captioning task is not registered yet")

INPUTS = {
    "tone.wav": wav(),
    "wav-cut-in-data.wav": wav()[:2000],  # the header promises 2000 frames
    "wav-cut-in-header.wav": wav()[:30],
    "12-bit.wav": wav_field(34, 12),  # bits per sample: no such integer width
    "a-law.wav": wav_field(20, 6),  # format tag 6: G.711 A-law, compressed
    "500hz.wav": wav(rate=500),
    "empty.wav": wav([]),
    "scene.png": png(),
    "png-cut-short.png": png(value=None)[:300],  # cut in the pixel data: "image file is truncated"
    "0x0.png": png_0x0(),
    "notes.png": b"not an image, whatever the name says\n",
    "clip.gif": gif(),
    "gif-cut-short.gif": gif()[:60],
    "mixed/frame_0.png": png(16, 16),
    "mixed/frame_1.png": png(16, 16, 90),
    "mixed/frame_2.png": png(10, 8),  # a frame of another size
}
COCO_IMAGES = [f"{i}.png" for i in range(6)]
COCO_WORDS = ["a bright square", "a dark square", "a grey square"]


def coco_document(names: list[str]) -> dict:
    return {"images": [{"id": i, "file_name": name} for i, name in enumerate(names)],
            "annotations": [{"image_id": i, "caption": COCO_WORDS[i % 3]} for i in range(len(names))]}


def write_media_workspace(root: Path) -> None:
    for name, data in INPUTS.items():
        (root / "inputs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "inputs" / name).write_bytes(data)
    (root / "coco" / "images").mkdir(parents=True)
    for i, name in enumerate(COCO_IMAGES):
        (root / "coco" / "images" / name).write_bytes(png(24, 24, (250, 10, 128)[i % 3]))
    for split, names in (("train", COCO_IMAGES), ("valid", COCO_IMAGES[:3]), ("test", COCO_IMAGES[3:])):
        (root / "coco" / f"{split}.json").write_text(json.dumps(coco_document(names)))
    caption = yaml_of(TINY_CONFIGS / "captioning.yaml")
    caption["data"] = {"source": "coco", "root": "coco", "size": 24}
    caption["tokenizer"]["vocab_size"] = 10
    (root / "coco.yaml").write_text(json.dumps(caption))  # JSON is YAML
    # a speech data set of three synthetic recordings, one per split: test 0-4, valid 5-9, train 10+
    (root / "bad_fsdd").mkdir()
    for index in (0, 5, 10):
        (root / "bad_fsdd" / f"3_synth_{index}.wav").write_bytes(wav())
    speech = yaml_of(TINY_CONFIGS / "speech.yaml")
    speech["data"] = {"root": "bad_fsdd", "n_train": 8, "n_valid": 2, "n_test": 2, "max_digits": 1}
    (root / "bad_speech.yaml").write_text(json.dumps(speech))


def yaml_of(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="session")
def media_base(tmp_path_factory) -> Path:
    """The media workspace, with its models trained once (side by side: each uses one thread)."""
    root = tmp_path_factory.mktemp("media")
    write_media_workspace(root)
    steps = ["--no-progress", "--set", "train.max_steps=2", "--set", "train.valid_every=2"]
    runs = {"video": [str(TINY_CONFIGS / "video_prediction.yaml")]}
    if HAS_FSDD:
        runs["speech"] = [str(TINY_CONFIGS / "speech.yaml"), "--set", f"data.root={FSDD}"]
    if HAS_CAPTIONING:
        runs["caption"] = ["coco.yaml"]
    procs = {name: subprocess.Popen([sys.executable, "-m", "any2seq", "train", *args, "--out", name, *steps],
                                    cwd=root, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for name, args in runs.items()}
    for name, proc in procs.items():
        err = proc.communicate(timeout=600)[1].decode()
        assert proc.returncode == 0, f"training {name}: {err}"
    return root


@pytest.fixture
def media_ws(media_base, tmp_path) -> Path:
    shutil.copytree(media_base, tmp_path, dirs_exist_ok=True)
    return tmp_path


def edit_json(name: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def setup(ws: Path):
        document = json.loads((ws / name).read_text())
        edit(document)
        (ws / name).write_text(json.dumps(document))
    return setup


def bad_recording(data: bytes) -> Callable[[Path], None]:
    return write_bytes("bad_fsdd/3_synth_10.wav", data)  # the only training recording


SPEECH = ["predict", "--model", "speech"]
VIDEO = ["predict", "--model", "video", "--out", "predicted"]
CAPTION = ["predict", "--model", "caption"]
EXPECTED = "any2seq reads 8/16/24/32-bit integer or 32/64-bit float WAV"
NOT_AN_IMAGE = "not a readable image"
COCO_TRAIN = [*TRAIN, "coco.yaml", "--out", "fresh"]

MEDIA_CASES = {
    # WAV files given to a speech model: nothing is converted silently
    "wav-cut-in-data": ("speech", Case([*SPEECH, "inputs/wav-cut-in-data.wav"],
                                       ["inputs/wav-cut-in-data.wav", "truncated WAV", "2000 frames"])),
    "wav-cut-in-header": ("speech", Case([*SPEECH, "inputs/wav-cut-in-header.wav"],
                                         ["inputs/wav-cut-in-header.wav", "not a readable WAV file"])),
    "wav-12-bit": ("speech", Case([*SPEECH, "inputs/12-bit.wav"], ["inputs/12-bit.wav", "12-bit integer", EXPECTED])),
    "wav-a-law": ("speech", Case([*SPEECH, "inputs/a-law.wav"], ["inputs/a-law.wav", "format tag 6", EXPECTED])),
    "wav-500hz": ("speech", Case([*SPEECH, "inputs/500hz.wav"], ["inputs/500hz.wav", "sample rate 500 Hz",
                                                                 "1000 to 768000 Hz"])),
    "wav-empty": ("speech", Case([*SPEECH, "inputs/empty.wav"], ["inputs/empty.wav", "empty audio", "0 frames"])),
    "wav-missing": ("speech", Case([*SPEECH, "inputs/nowhere.wav"], ["inputs/nowhere.wav", "no such WAV file"])),
    "wav-bad-among-good": ("speech", Case([*SPEECH, "inputs/tone.wav", "inputs/a-law.wav"],
                                          ["inputs/a-law.wav", "format tag 6"])),
    "speech-model-given-an-image": ("speech", Case([*SPEECH, "inputs/scene.png"],
                                                   ["inputs/scene.png", "not a readable WAV, FLAC or OGG file"])),
    "speech-model-given-no-input": ("speech", Case(SPEECH, ["speech model reads audio files", "INPUT"])),
    # bad recordings in a speech model's training data
    "train-wav-cut-short": ("", Case([*TRAIN, "bad_speech.yaml", "--out", "fresh"],
                                     ["bad_fsdd/3_synth_10.wav", "truncated WAV"], bad_recording(wav()[:2000]))),
    "train-wav-a-law": ("", Case([*TRAIN, "bad_speech.yaml", "--out", "fresh"],
                                 ["bad_fsdd/3_synth_10.wav", "format tag 6"], bad_recording(wav_field(20, 6)))),
    "train-wav-12-bit": ("", Case([*TRAIN, "bad_speech.yaml", "--out", "fresh"],
                                  ["bad_fsdd/3_synth_10.wav", "12-bit integer"], bad_recording(wav_field(34, 12)))),
    "train-wav-empty": ("", Case([*TRAIN, "bad_speech.yaml", "--out", "fresh"],
                                 ["bad_fsdd/3_synth_10.wav", "empty audio"], bad_recording(wav([])))),
    # frame folders and GIFs given to a video model
    "frames-of-mixed-sizes": ("video", Case([*VIDEO, "inputs/mixed"],
                                            ["inputs/mixed/frame_2.png", "frame size 10x8", "16x16",
                                             "inputs/mixed/frame_0.png"])),
    "gif-cut-short": ("video", Case([*VIDEO, "inputs/gif-cut-short.gif"], ["inputs/gif-cut-short.gif", NOT_AN_IMAGE])),
    "frame-folder-empty": ("video", Case([*VIDEO, "inputs/none"], ["inputs/none", "holds no image files"],
                                         mkdir("inputs/none"))),
    "video-model-given-a-wav": ("video", Case([*VIDEO, "inputs/tone.wav"], ["inputs/tone.wav", NOT_AN_IMAGE])),
    # image files given to a captioning model
    "png-cut-short": ("caption", Case([*CAPTION, "inputs/png-cut-short.png"],
                                      ["inputs/png-cut-short.png", NOT_AN_IMAGE, "truncated"])),
    "not-an-image": ("caption", Case([*CAPTION, "inputs/notes.png"], ["inputs/notes.png", NOT_AN_IMAGE])),
    "image-of-0x0-pixels": ("caption", Case([*CAPTION, "inputs/0x0.png"], ["inputs/0x0.png", NOT_AN_IMAGE])),
    "image-missing": ("caption", Case([*CAPTION, "inputs/nowhere.png"], ["inputs/nowhere.png", "no such image file"])),
    "caption-model-given-a-wav": ("caption", Case([*CAPTION, "inputs/tone.wav"], ["inputs/tone.wav", NOT_AN_IMAGE])),
    # COCO-format caption data to train a captioning model on
    "coco-no-images-key": ("coco", Case(COCO_TRAIN, ["coco/train.json", "the file has no 'images' key"],
                                        edit_json("coco/train.json", lambda d: d.pop("images")))),
    "coco-no-annotations-key": ("coco", Case(COCO_TRAIN, ["coco/valid.json", "the file has no 'annotations' key"],
                                             edit_json("coco/valid.json", lambda d: d.pop("annotations")))),
    "coco-image-without-file-name": ("coco", Case(COCO_TRAIN, ["coco/train.json", "images[2] has no 'file_name' key"],
                                                  edit_json("coco/train.json",
                                                            lambda d: d["images"][2].pop("file_name")))),
    "coco-caption-missing": ("coco", Case(COCO_TRAIN, ["coco/train.json", "annotations[1] has no 'caption' key"],
                                          edit_json("coco/train.json", lambda d: d["annotations"][1].pop("caption")))),
    "coco-caption-not-text": ("coco", Case(COCO_TRAIN, ["coco/train.json", "annotations[0]", "'caption' must be str"],
                                           edit_json("coco/train.json",
                                                     lambda d: d["annotations"][0].update(caption=["a", "b"])))),
    "coco-unknown-image-id": ("coco", Case(COCO_TRAIN, ["coco/train.json", "image_id 99 is not in 'images'"],
                                           edit_json("coco/train.json",
                                                     lambda d: d["annotations"][0].update(image_id=99)))),
    "coco-not-json": ("coco", Case(COCO_TRAIN, ["coco/train.json:1", "not valid JSON"],
                                   write_bytes("coco/train.json", b'{"images": [}'))),
    "coco-image-file-missing": ("coco", Case(COCO_TRAIN, ["coco/train.json", "4.png' does not exist"],
                                             remove("coco/images/4.png"))),
    "coco-image-corrupt": ("coco", Case(COCO_TRAIN, ["coco/images/4.png", NOT_AN_IMAGE],
                                        truncate("coco/images/4.png"))),
    "coco-image-0x0": ("coco", Case(COCO_TRAIN, ["coco/images/4.png", NOT_AN_IMAGE],
                                    write_bytes("coco/images/4.png", png_0x0()))),
}
MODELS = ("speech", "video", "caption")
MARKS = {"speech": [needs_fsdd], "caption": [needs_captioning], "coco": [needs_captioning]}


@pytest.mark.parametrize("needs, case", [pytest.param(needs, case, marks=MARKS.get(needs, []), id=name)
                                         for name, (needs, case) in MEDIA_CASES.items()])
def test_bad_media_input_is_one_line_exit_2_and_touches_nothing(media_ws, needs: str, case: Case):
    assert_refused(media_ws, case, [m for m in MODELS if (media_ws / m).is_dir()])


def test_the_good_media_inputs_are_read(media_ws):
    """The bad inputs above differ from these in the one way their case names (and coco/ trains)."""
    good = {"speech": [*SPEECH, "inputs/tone.wav"], "video": [*VIDEO, "inputs/clip.gif"],
            "caption": [*CAPTION, "inputs/scene.png"]}
    for model, args in good.items():
        if (media_ws / model).is_dir():  # speech needs FSDD, caption the captioning task
            proc = any2seq(*args, cwd=media_ws)
            assert proc.returncode == 0, proc.stderr.decode()
            assert len(proc.stdout.decode().splitlines()) == 1


def test_the_pickle_payload_would_show(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pickle.loads(pickle.dumps(Payload(), protocol=3))
    assert (tmp_path / "unpickled").is_dir()  # so its absence above proves nothing was unpickled


def test_ctrl_c_saves_and_resume_continues(ws):
    """The first Ctrl-C finishes the step, writes a checkpoint and exits 2; --resume carries on from it."""
    (ws / "long.yaml").write_text(TINY.replace("max_steps: 2", "max_steps: 100000").replace("valid_every: 1",
                                                                                             "valid_every: 3"))
    checkpoints = ws / "long/checkpoints"
    # SIGINT's default action in the child even where the runner ignores it (a shell's background job does):
    # a run started ignoring a signal keeps ignoring it, by design
    proc = subprocess.Popen([sys.executable, "-m", "any2seq", "train", "long.yaml", "--out", "long", "--no-progress"],
                            cwd=ws, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))
    deadline = time.monotonic() + 600
    while not list(checkpoints.glob("step_*[0-9]")):  # training has started: the Ctrl-C handler is in place
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith("any2seq: ")]  # besides the run's status lines
    assert errors == lines[-1:], err
    last = sorted(checkpoints.glob("step_*[0-9]"))[-1]
    step = json.loads((last / "trainer.json").read_text())["step"]
    assert "interrupted" in lines[-1] and f"saved step {step}" in lines[-1] and "--resume" in lines[-1]
    assert last.name == f"step_{step:08d}"
    assert sorted(p.name for p in last.iterdir()) == ["model.safetensors", "optimizer.safetensors", "trainer.json"]
    assert not list(checkpoints.glob("*.tmp"))

    resumed = any2seq("train", "long.yaml", "--out", "long", "--no-progress", "--resume",
                      "--set", f"train.max_steps={step + 2}", cwd=ws)
    assert resumed.returncode == 0, resumed.stderr.decode()
    final = json.loads((ws / "long/checkpoints" / f"step_{step + 2:08d}/trainer.json").read_text())
    assert final["step"] == step + 2
