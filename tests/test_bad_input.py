"""Bad input through the real command line: one line on stderr naming the file, line or key;
no traceback; exit status 2; and the checkpoints already on disk left byte for byte as they were.

Every row of CASES runs ``python -m any2seq ...`` in a fresh workspace holding a tiny data set
(``data/``), its config (``tiny.yaml``) and a model trained from it for two steps (``run/``).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
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
    """sha256 of every file under ``root``, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


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
    "top-p-range": Case([*TRANSLATE, "--sample", "--top-p", "1.5"], ["--top-p", "(0, 1]"], stdin=SENTENCE),
    "temperature-zero": Case([*TRANSLATE, "--sample", "--temperature", "0"], ["--temperature", "positive"],
                             stdin=SENTENCE),
    "n-best-over-beam": Case([*TRANSLATE, "--beam", "2", "--n-best", "3"], ["--n-best", "--beam 2"], stdin=SENTENCE),
    "stdin-not-utf8": Case(TRANSLATE, ["<stdin>:2", "UTF-8"], stdin=SENTENCE + b"caf\xe9\n"),
    # evaluate and average
    "evaluate-lengths-differ": Case(EVALUATE, ["data/val.de", "11", "data/val.en", "10"], extra_line("data/val.de")),
    "evaluate-src-missing": Case(["evaluate", "--model", "run", "--src", "missing.de", "--ref", "data/val.en"],
                                 ["missing.de", "no such file"]),
    "evaluate-hyps-not-writable": Case([*EVALUATE, "--hyps", "tiny.yaml/hyps.txt"],
                                       ["--hyps tiny.yaml/hyps.txt", "tiny.yaml is a file"]),
    "average-out-not-writable": Case(["average", "run", "--out", "tiny.yaml/avg"], ["tiny.yaml/avg", "not writable"]),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_exit_2_and_touches_nothing(ws, case: Case):
    if case.setup:
        case.setup(ws)
    before = digest(ws / "run")
    proc = any2seq(*case.args, cwd=ws, stdin=case.stdin)
    err = proc.stderr.decode("utf-8", errors="replace")
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    for part in case.expect:
        assert part in lines[0], lines[0]
    assert digest(ws / "run") == before, "the existing run was changed"
    assert not (ws / "unpickled").exists(), "a pickle was loaded"


def test_the_pickle_payload_would_show(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pickle.loads(pickle.dumps(Payload(), protocol=3))
    assert (tmp_path / "unpickled").is_dir()  # so its absence above proves nothing was unpickled


def test_ctrl_c_saves_and_resume_continues(ws):
    """The first Ctrl-C finishes the step, writes a checkpoint and exits 2; --resume carries on from it."""
    (ws / "long.yaml").write_text(TINY.replace("max_steps: 2", "max_steps: 100000").replace("valid_every: 1",
                                                                                             "valid_every: 3"))
    checkpoints = ws / "long/checkpoints"
    proc = subprocess.Popen([sys.executable, "-m", "any2seq", "train", "long.yaml", "--out", "long", "--no-progress"],
                            cwd=ws, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
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
