"""Hostile input (issue 21): what a careful attacker or an unlucky user hands the command line.

Each case ends in one line on stderr naming the file or key, exit status 2, no traceback, within
bounded memory (the child's address space is capped, so a YAML bomb or a read of /dev/zero dies
there rather than on the host) and a generous hang guard (a FIFO that blocks fails the test).
FIFOs and /dev/zero links are made in the test's own workspace: conftest's tiny corpus in
``data/``, its config ``tiny.yaml`` and ``run/``, a translation model trained on it for two steps.
"""
from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from any2seq.cli import main

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
TINY = """\
data: {root: data, max_len: 64}
tokenizer: {vocab_size: 100}
model:
  encoder: {kind: transformer, d_model: 16, layers: 1, heads: 2, ff: 32, dropout: 0.0}
  decoder: {kind: transformer, d_model: 16, layers: 1, heads: 2, ff: 32, dropout: 0.0}
train: {batch_tokens: 256, lr: 3.0e-3, warmup: 2, max_steps: 2, valid_every: 1, log_every: 1,
        valid_bleu: false, metric: loss, threads: 1}
"""
MEMORY = 6 << 30  # address space per child: several times what a tiny model needs
HANG = 600  # seconds: a hang guard for a loaded machine, not a speed check


def _cap_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def any2seq(*args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "any2seq", *args], cwd=cwd, input=stdin, env=ENV,
                          capture_output=True, timeout=HANG, preexec_fn=_cap_memory)


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def base(corpus, tmp_path_factory) -> Path:
    """The workspace, with ``run/`` trained once."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "data").mkdir()
    for name in ("train.de", "train.en", "val.de", "val.en"):
        shutil.copy(corpus / name, root / "data" / name)
    (root / "tiny.yaml").write_text(TINY)
    proc = any2seq("train", "tiny.yaml", "--out", "run", "--no-progress", cwd=root)
    assert proc.returncode == 0, proc.stderr.decode()
    shutil.rmtree(root / "data" / ".cache")  # its key holds this path; each copy encodes afresh
    return root


@pytest.fixture
def ws(base, tmp_path) -> Path:
    shutil.copytree(base, tmp_path, dirs_exist_ok=True)
    return tmp_path


def refused(proc: subprocess.CompletedProcess, *expect: str) -> str:
    """The one stderr line of a refused command, checked: exit 2, no traceback, every part in it."""
    err = proc.stderr.decode("utf-8", errors="replace")
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 2, err[-2000:]
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    assert len(lines[0]) < 400, lines[0][:400]  # a value quoted in the message is a short preview
    for part in expect:
        assert part in lines[0], lines[0]
    return lines[0]


# --- 1: average never writes over an existing directory ------------------------------------------


def test_average_refuses_an_existing_model_directory(ws):
    shutil.copytree(ws / "run", ws / "other")
    (ws / "other" / "notes.txt").write_text("mine\n")
    before = digest(ws / "other")
    refused(any2seq("average", "run", "--out", "other", cwd=ws), "--out other", "not an empty directory")
    assert digest(ws / "other") == before
    (ws / "empty").mkdir()
    assert any2seq("average", "run", "--out", "empty", cwd=ws).returncode == 0  # empty is fine, as for export
    assert (ws / "empty" / "model.safetensors").is_file()


# --- 3: YAML alias bombs -------------------------------------------------------------------------


def alias_bomb(levels: int = 9) -> str:
    """A flow list of nine-fold aliases, ``levels`` deep: 9**levels values from half a KB of YAML."""
    parts = ["&a0 [" + ", ".join(["lol"] * 9) + "]"]
    parts += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "[" + ", ".join(parts) + "]"


def test_the_bomb_is_small_and_huge():
    bomb = alias_bomb()
    assert len(bomb) < 2000
    from yaml import SafeLoader, compose

    assert len(compose(bomb, Loader=SafeLoader).value) == 10  # it parses: the harm is in expanding it


@pytest.mark.parametrize("where", ["config", "set", "model-config"])
def test_a_yaml_alias_bomb_is_refused(ws, where):
    bomb = alias_bomb()
    if where == "config":
        (ws / "bomb.yaml").write_text(TINY.replace("lr: 3.0e-3", f"lr: {bomb}"))
        proc = any2seq("train", "bomb.yaml", "--out", "fresh", cwd=ws)
        path = "bomb.yaml"
    elif where == "set":
        proc = any2seq("train", "tiny.yaml", "--out", "fresh", "--set", f"train.lr={bomb}", cwd=ws)
        path = "--set train.lr"
    else:
        config = (ws / "run/config.yaml").read_text()
        (ws / "run/config.yaml").write_text(config.replace("lr: 0.003", f"lr: {bomb}", 1))
        assert bomb in (ws / "run/config.yaml").read_text()
        proc = any2seq("info", "--model", "run", cwd=ws)
        path = "run/config.yaml"
    refused(proc, path, "more than 100,000 values")
    assert not (ws / "fresh").exists()


def test_a_value_in_an_error_is_a_short_preview(ws):
    long_list = "[" + ", ".join(["x" * 50] * 2000) + "]"  # 100 KB, no aliases: under the bound
    line = refused(any2seq("train", "tiny.yaml", "--set", f"train.lr={long_list}", cwd=ws),
                   "--set train.lr", "expected a number", "...")
    assert len(line) < 200


def test_a_recursive_alias_is_refused(ws):
    (ws / "loop.yaml").write_text(TINY + "decode: &d {beam: *d}\n")
    refused(any2seq("train", "loop.yaml", cwd=ws), "loop.yaml", "refers to a value that contains it")


# --- 7: model sizes are validated at load, with the key path --------------------------------------


@pytest.mark.parametrize("override, expect", [
    ("model.encoder.heads=0", ["--set model.encoder.heads", "1..1024, got 0"]),
    ("model.decoder.layers=100000000", ["--set model.decoder.layers", "1..1000"]),
    ("model.encoder.layers=-1", ["--set model.encoder.layers", "got -1"]),
    ("model.decoder.ff=0", ["--set model.decoder.ff", "got 0"]),
    ("model.encoder.d_model=-16", ["--set model.encoder.d_model", "got -16"]),
    ("model.decoder.dropout=5", ["--set model.decoder.dropout", "[0, 1)"]),
    ("train.betas=[2, -1]", ["--set train.betas[0]", "[0, 1)"]),
    ("model.encoder={kind: gru, hidden: 0}", ["--set model.encoder.hidden", "got 0"]),
    ("model.decoder={kind: gru, layers: 0}", ["--set model.decoder.layers", "got 0"]),
    ("model.encoder={kind: image, width: 64, stages: 12}", ["--set model.encoder.width", "12 stages"]),
])
def test_train_refuses_bad_model_sizes(ws, override, expect):
    refused(any2seq("train", "tiny.yaml", "--out", "fresh", "--set", override, cwd=ws), *expect)
    assert not (ws / "fresh").exists()


@pytest.mark.parametrize("command", [["info", "--model", "run"], ["translate", "--model", "run"],
                                     ["export", "--ct2", "run", "ct2"]])
@pytest.mark.parametrize("edit, key", [("heads: 2", "heads: 0"), ("ff: 32", "ff: 0"), ("layers: 1", "layers: -1")])
def test_a_model_directory_with_bad_sizes_is_refused(ws, command, edit, key):
    config = ws / "run/config.yaml"
    config.write_text(config.read_text().replace(edit, key, 1))
    refused(any2seq(*command, cwd=ws, stdin=b"Hallo.\n"), "run/config.yaml", f"model.encoder.{key.split(':')[0]}")
    assert not (ws / "ct2").exists()


# --- 8: a full disk is one line naming the file, and evaluate's scores come first ------------------


def disk_full_on(monkeypatch, name: str) -> list[str]:
    """Make every atomic write of a file called ``name`` fail as a full disk would; returns the paths tried."""
    import any2seq.fileio as fileio

    tried = []

    class Full:
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fake_open(path, *args, **kwargs):
        file = open(path, *args, **kwargs)
        if Path(path).name.startswith(f".{name}."):  # atomic_write's temporary name
            tried.append(str(path))
            return Full(file)
        return file

    monkeypatch.setattr(fileio, "open", fake_open, raising=False)
    return tried


@pytest.mark.parametrize("name, args", [
    ("model.safetensors", ["train", "tiny.yaml", "--out", "fresh", "--no-progress"]),
    ("model.safetensors", ["average", "run", "--out", "avg"]),
    ("hyps.txt", ["evaluate", "--model", "run", "--src", "data/val.de", "--ref", "data/val.en", "--hyps", "hyps.txt"]),
    ("any2seq_export.json", ["export", "--ct2", "run", "ct2"]),
    ("curves.png", ["plot", "curves", "run"]),
])
def test_a_full_disk_is_one_line_naming_the_file(ws, monkeypatch, capsys, name, args):
    monkeypatch.chdir(ws)
    before = digest(ws / "run")
    tried = disk_full_on(monkeypatch, name)
    assert main(args) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("any2seq: ")]
    assert tried and len(lines) == 1, err
    assert name in lines[0] and "No space left on device" in lines[0] and "Traceback" not in err
    assert digest(ws / "run") == before
    assert not (ws / "avg").exists() and not (ws / "ct2").exists()  # nothing half-written
    if args[0] == "evaluate":
        assert out.startswith("BLEU "), out  # the finished decode's scores are not lost


def test_an_unwrapped_full_disk_is_one_line_too(monkeypatch, capsys):
    import any2seq.cli as cli

    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "runs/x/metrics.jsonl")
    monkeypatch.setitem(cli.COMMANDS, "info", full)
    assert main(["info", "--model", "x"]) == 2
    assert capsys.readouterr().err == "any2seq info: error: runs/x/metrics.jsonl: No space left on device\n"


# --- 9: FIFOs and devices are refused, never read -------------------------------------------------

SPECIAL = {"fifo": lambda path: os.mkfifo(path), "dev-zero": lambda path: os.symlink("/dev/zero", path)}


@pytest.mark.parametrize("special", SPECIAL)
@pytest.mark.parametrize("name, command", [
    ("model.json", ["info", "--model", "run"]),
    ("model.safetensors", ["translate", "--model", "run"]),
    ("spm.model", ["translate", "--model", "run"]),
    ("config.yaml", ["info", "--model", "run"]),
    ("spm.model", ["export", "--ct2", "run", "ct2"]),
])
def test_special_files_in_a_model_directory_are_refused(ws, special, name, command):
    (ws / "run" / name).unlink()
    SPECIAL[special](ws / "run" / name)
    kind = "named pipe" if special == "fifo" else "character device"
    refused(any2seq(*command, cwd=ws, stdin=b"Hallo.\n"), f"run/{name}", kind, "not a regular file")


@pytest.mark.parametrize("special", SPECIAL)
def test_special_files_as_config_and_input_files_are_refused(ws, special):
    SPECIAL[special](ws / "special")
    kind = "named pipe" if special == "fifo" else "character device"
    refused(any2seq("train", "special", cwd=ws), "special", kind)
    code = ("import sys; from any2seq.errors import UserError\n"
            "from any2seq.data.audio import read_wav\nfrom any2seq.data.images import read_image\n"
            "from any2seq.data.video import read_frames\n"
            "for read in (read_wav, read_image, read_frames):\n"
            "    try:\n        read('special')\n    except UserError as e:\n        print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ws, env=ENV, capture_output=True, timeout=HANG,
                          preexec_fn=_cap_memory)
    lines = proc.stdout.decode().splitlines()
    assert proc.returncode == 0 and len(lines) == 3, proc.stderr.decode()[-2000:]
    assert all(line.startswith("special: cannot read") and kind in line for line in lines), lines
    assert "no such image file" not in proc.stdout.decode()


# --- 11: a malformed model card ------------------------------------------------------------------


@pytest.mark.parametrize("card, expect", [
    (b"[1, 2, 3]", "expected a JSON object, got a list"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ("parameters", "'parameters' must be int, got str 'lots'"),
    ("averaged", "'averaged' must be list"),
    (b'{"format_version": ' + b"1" * 5000 + b"}", "not readable JSON"),
])
@pytest.mark.parametrize("command", [["info", "--model", "run"], ["translate", "--model", "run"],
                                     ["export", "--ct2", "run", "ct2"]])
def test_a_malformed_model_card_is_one_line(ws, card, expect, command):
    path = ws / "run/model.json"
    if isinstance(card, str):  # a field of the wrong type
        path.write_text(json.dumps({**json.loads(path.read_text()), card: "lots"}))
    else:
        path.write_bytes(card)
    refused(any2seq(*command, cwd=ws, stdin=b"Hallo.\n"), "run/model.json", expect)


# --- lesser: .gz beside a plain file, truncated gzip, format wording, NaN in JSON ---------------------


def test_a_plain_file_and_its_gz_are_ambiguous(ws):
    (ws / "data/train.de.gz").write_bytes(gzip.compress(b"Etwas anderes.\n"))
    refused(any2seq("train", "tiny.yaml", cwd=ws), "data.train", "data/train.de and data/train.de.gz")


def test_a_truncated_gzip_names_the_line_where_it_breaks(ws):
    import random

    rng = random.Random(0)  # text that compresses little, so half the file holds many whole lines
    text = "".join(" ".join(f"{rng.randrange(10**6)}" for _ in range(8)) + "\n" for _ in range(2000))
    packed = gzip.compress(text.encode())
    packed = packed[: len(packed) // 2]
    (ws / "data/train.de").unlink()
    (ws / "data/train.de.gz").write_bytes(packed)
    whole = zlib.decompressobj(31).decompress(packed).count(b"\n")  # lines before the cut
    assert whole > 1
    refused(any2seq("train", "tiny.yaml", cwd=ws), f"data/train.de.gz:{whole + 1}: corrupt gzip")


def test_a_card_format_of_another_type_says_so(ws):
    path = ws / "run/model.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format_version": "1"}))
    line = refused(any2seq("info", "--model", "run", cwd=ws), "run/model.json", "in format '1'")
    assert "reads format 1" in line  # not "format 1 ... reads format 1"


def test_info_json_is_json_even_with_nan(ws):
    path = ws / "run/model.json"
    card = json.loads(path.read_text())
    path.write_text(json.dumps({**card, "valid": {"loss": float("nan"), "bleu": float("inf")}}))
    proc = any2seq("info", "--model", "run", "--json", cwd=ws)
    assert proc.returncode == 0, proc.stderr.decode()

    def strict(constant):
        raise AssertionError(f"{constant} is not JSON")
    info = json.loads(proc.stdout, parse_constant=strict)
    assert info["card"]["valid"] == {"loss": None, "bleu": None}
