"""Runs and decodes under hostile conditions (issue 21, part B): a second `train` into a run that
is training, SIGTERM and SIGHUP, a learning rate that makes every validation NaN, a corrupt
trainer.json, an over-long source line, unbounded or non-numeric search options, NaN weights.
Each ends in one line naming what is wrong (exit 2, a UserError, or a 4xx), or, for the long line,
in output for every line; nothing already on disk changes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file, save_file

import any2seq
from any2seq.config import load_config
from any2seq.errors import NoOutput, UserError
from any2seq.serve import Limits, create_app

from .train.helpers import checkpoint, cli, run_env, train_here, write_config, write_corpus

HANG_GUARD_S = 600  # generous: a loaded 2-core host; no test asserts a duration


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def one_line_error(proc, *needles: str) -> str:
    """The refusal's contract: exit 2, no traceback, one line that holds every needle."""
    err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("any2seq: ")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], err
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def model_dir(data, tmp_path_factory) -> Path:
    """A model trained for two steps: enough to decode (badly), in seconds."""
    root = tmp_path_factory.mktemp("model")
    train_here(write_config(root / "tiny.yaml", data, max_steps=2, valid_every=1), root / "run")
    return root / "run"


def start_long_run(root: Path, data: Path, out: Path) -> subprocess.Popen:
    """``any2seq train`` for 100,000 steps into ``out``, once it has written a checkpoint
    (its signal handlers and lock are in place then)."""
    config = write_config(root / "long.yaml", data, max_steps=100_000, valid_every=3)
    # the child starts with SIGHUP's default action even where this runner ignores it (nohup, some CI
    # agents): a run started ignoring SIGHUP keeps ignoring it, by design, and the SIGHUP test would hang
    proc = subprocess.Popen(cli("train", str(config), "--out", str(out), "--no-progress"), env=run_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    deadline = time.monotonic() + HANG_GUARD_S
    while not list((out / "checkpoints").glob("step_*[0-9]")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
        time.sleep(0.05)
    return proc


# --- finding 2: one run directory, one training process ------------------------------------------

def test_a_second_train_into_a_running_run_is_refused_and_kill_9_leaves_no_stale_lock(data, tmp_path):
    out = tmp_path / "long"
    first = start_long_run(tmp_path, data, out)
    try:
        first.send_signal(signal.SIGSTOP)  # frozen, so any change to the folder is the second run's
        before = digest(out)
        for extra in ([], ["--resume"], ["--resume", "--set", "model.encoder.layers=2"]):
            second = subprocess.run(cli("train", str(tmp_path / "long.yaml"), "--out", str(out), "--no-progress",
                                        *extra), env=run_env(), capture_output=True, text=True, timeout=HANG_GUARD_S)
            one_line_error(second, str(out), f"pid {first.pid}", "--out")
            assert digest(out) == before  # config.yaml, metrics.jsonl, checkpoints: untouched
    finally:
        first.kill()  # SIGKILL: the lock goes with the process
        first.communicate(timeout=HANG_GUARD_S)
    step = json.loads((sorted((out / "checkpoints").glob("step_*[0-9]"))[-1] / "trainer.json").read_text())["step"]
    resumed = subprocess.run(cli("train", str(tmp_path / "long.yaml"), "--out", str(out), "--no-progress", "--resume",
                                 "--set", f"train.max_steps={step + 1}"),
                             env=run_env(), capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint(out, step + 1).is_dir()


# --- finding 14: SIGTERM and SIGHUP save like Ctrl-C ----------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_save_a_checkpoint_and_say_how_to_resume(data, tmp_path, signum):
    out = tmp_path / "long"
    proc = start_long_run(tmp_path, data, out)
    proc.send_signal(signum)
    err = proc.communicate(timeout=HANG_GUARD_S)[1].decode()
    last = sorted((out / "checkpoints").glob("step_*[0-9]"))[-1]
    step = json.loads((last / "trainer.json").read_text())["step"]
    one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, "", err),
                   "interrupted", f"saved step {step}", "--resume")
    assert not list((out / "checkpoints").glob("*.tmp"))


# --- finding 13: a run that never made a model says so -------------------------------------------

@pytest.mark.parametrize("override", ["train.lr=.inf", "train.lr=.nan", "train.clip=.inf", "train.betas=[0.9, .nan]",
                                      "train.max_minutes=.inf"])
def test_non_finite_train_settings_are_refused_at_load(data, tmp_path, override):
    config = write_config(tmp_path / "tiny.yaml", data)
    key = override.split("=")[0].split(".")[1]
    # betas' own range check refuses a NaN ("must be in [0, 1)"); the others name finiteness
    expected = r"--set train\.betas\[1\]: must be in \[0, 1\), got nan" if key == "betas" else rf"--set train\.{key}: .*finite"
    with pytest.raises(UserError, match=expected):
        load_config(config, [override])


def test_a_run_whose_every_validation_is_nan_fails_and_names_no_model(data, tmp_path):
    config = write_config(tmp_path / "tiny.yaml", data, max_steps=3, valid_every=1, lr=1e30, clip=0.0)
    with pytest.raises(UserError, match="no model: every validation loss was NaN"):
        train_here(config, tmp_path / "run")
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "model.json").exists()


# --- lesser: a corrupt trainer.json on --resume ---------------------------------------------------

@pytest.mark.parametrize("corrupt", [
    lambda t: [1, 2, 3],
    lambda t: {k: v for k, v in t.items() if k != "param_groups"},
    lambda t: {**t, "param_groups": [{"lr": 1}]},
    lambda t: {**t, "step": "many"},
    lambda t: {**t, "position": [0]},
    lambda t: {**t, "best": "x"},
], ids=["a-list", "no-param-groups", "param-groups-wrong", "step-a-string", "position-short", "best-a-string"])
def test_a_corrupt_trainer_json_is_named_on_resume(data, tmp_path, corrupt):
    config = write_config(tmp_path / "tiny.yaml", data, max_steps=2, valid_every=1)
    train_here(config, tmp_path / "run")
    path = checkpoint(tmp_path / "run", 2) / "trainer.json"
    path.write_text(json.dumps(corrupt(json.loads(path.read_text()))))
    before = digest(tmp_path / "run" / "checkpoints")
    with pytest.raises(UserError, match=str(path)):
        train_here(config, tmp_path / "run", resume=True, overrides=("train.max_steps=3",))
    assert digest(tmp_path / "run" / "checkpoints") == before


# --- finding 5: an over-long source line is cut, and the file is still translated ----------------

def _address_space(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_an_over_long_line_is_cut_with_a_warning_and_every_line_is_translated(model_dir, tmp_path):
    lines = ["Ein Hund läuft.", "Hund " * 20_000, "Eine Katze schläft."]  # line 2: ~100 KB, tens of thousands of tokens
    src = tmp_path / "in.de"
    src.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    # Uncut, line 2's self-attention alone wants >10 GB; 3 GiB of address space is plenty for the cut one.
    with open(src, "rb") as stdin:
        proc = subprocess.run(cli("translate", "--model", str(model_dir)), stdin=stdin, capture_output=True,
                              text=True, env=run_env(), timeout=HANG_GUARD_S, preexec_fn=_address_space(3 << 30))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.splitlines()) == 3
    warnings = [line for line in proc.stderr.splitlines() if "max_src_len" in line]
    assert len(warnings) == 1 and "input 2:" in warnings[0] and "first 1024" in warnings[0], proc.stderr


def test_the_api_cuts_sources_to_max_src_len_and_warns(model_dir, caplog, monkeypatch):
    predictor = any2seq.load(model_dir)
    seen = []
    encode = predictor.model.encode
    monkeypatch.setattr(predictor.model, "encode", lambda src, lengths: seen.append(src.size(1)) or encode(src, lengths))
    with caplog.at_level(logging.WARNING, logger="any2seq"):
        out = predictor.translate(["Ein Hund.", "Hund " * 200, "Katze"], beam=2, max_src_len=16)
    assert len(out) == 3 and max(seen) <= 16
    assert [r.getMessage() for r in caplog.records if "input 2:" in r.getMessage()], caplog.text
    with pytest.raises(UserError, match="--max-src-len"):
        predictor.translate(["Ein Hund."], max_src_len=0)


def test_learned_positions_cap_the_source_length(data, tmp_path):
    config = write_config(tmp_path / "tiny.yaml", data, max_steps=1, valid_every=1)
    train_here(config, tmp_path / "run", overrides=("model.encoder.positions=learned", "model.encoder.max_positions=256",
                                                    "model.decoder.positions=learned", "model.decoder.max_positions=256"))
    predictor = any2seq.load(tmp_path / "run")
    assert len(predictor.translate(["Hund " * 1000], beam=2, max_len=400)) == 1  # past 256 positions: cut, not a crash



def learned(n: int) -> tuple[str, ...]:
    return tuple(f"model.{side}.{key}" for side in ("encoder", "decoder")
                 for key in ("positions=learned", f"max_positions={n}"))


def test_training_pairs_longer_than_learned_positions_are_refused_before_the_first_step(data, tmp_path):
    config = write_config(tmp_path / "tiny.yaml", data, max_steps=1, valid_every=1)  # data.max_len 48
    proc = subprocess.run(cli("train", str(config), "--out", str(tmp_path / "run"), "--no-progress",
                              *[a for o in learned(16) for a in ("--set", o)]),
                          capture_output=True, text=True, env=run_env(), timeout=HANG_GUARD_S)
    one_line_error(proc, "model.encoder.max_positions: 16 learned positions", "data.max_len")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_validation_leaves_out_pairs_longer_than_learned_positions(data, tmp_path):
    """Training pairs fit (data.max_len 30), validation sentences do not all fit: the loss leaves
    those out and greedy validation cuts its sources and outputs to the tables, instead of crashing
    at the first validation."""
    config = write_config(tmp_path / "tiny.yaml", data, max_steps=2, valid_every=2, valid_bleu=True, metric="bleu")
    result = train_here(config, tmp_path / "run", overrides=(*learned(32), "data.max_len=30"))
    assert result["step"] == 2
    assert any2seq.load(tmp_path / "run").translate(["Ein Hund " * 20], max_len=50)


# --- finding 6: bounded, typed search options -------------------------------------------------------

def test_a_huge_beam_is_refused_on_the_command_line_before_the_model_loads(tmp_path):
    proc = subprocess.run(cli("translate", "--model", str(tmp_path / "nothing-here"), "--beam", "1000000"),
                          input="Ein Hund.\n", capture_output=True, text=True, env=run_env(), timeout=HANG_GUARD_S)
    one_line_error(proc, "--beam", "at most 256", "1000000")


@pytest.mark.parametrize("override, why", [("decode.beam=1000000000", "must be at most 256"),
                                           ("decode.length_penalty=.nan", "must be a finite number"),
                                           ("decode.max_src_len=0", "must be at least 1")])
def test_decode_settings_out_of_range_are_refused_at_load(data, tmp_path, override, why):
    config = write_config(tmp_path / "tiny.yaml", data)
    with pytest.raises(UserError, match=rf"--set {override.split('=')[0]}: {why}"):
        load_config(config, [override])


@pytest.mark.parametrize("options, flag", [
    ({"beam": 2.5}, "--beam"), ({"beam": 10 ** 6}, "--beam"), ({"beam": "5"}, "--beam"), ({"beam": True}, "--beam"),
    ({"max_len": 2.5}, "--max-len"), ({"max_len": 10 ** 9}, "--max-len"), ({"n_best": 1.0}, "--n-best"),
    ({"length_penalty": float("nan")}, "--length-penalty"), ({"length_penalty": float("inf")}, "--length-penalty"),
    ({"length_penalty": "1"}, "--length-penalty"), ({"temperature": float("inf"), "sample": True}, "--temperature"),
    ({"sample": "yes"}, "--sample"), ({"seed": 1.5}, "--seed"),
])
def test_the_api_refuses_bad_search_options_by_name(model_dir, options, flag):
    with pytest.raises(UserError, match=f"^{flag}: "):
        any2seq.load(model_dir).translate(["Ein Hund."], **options)


def test_the_api_refuses_a_lone_surrogate_by_input(model_dir):
    with pytest.raises(UserError, match="input 2: not valid Unicode"):
        any2seq.load(model_dir).translate(["Ein Hund.", "Ein \ud800 Hund."])


# --- finding 12: NaN length penalty, NaN weights, no hypothesis ------------------------------------

def test_a_nan_length_penalty_is_refused_on_the_command_line(model_dir):
    proc = subprocess.run(cli("translate", "--model", str(model_dir), "--length-penalty", "nan"),
                          input="Ein Hund.\n", capture_output=True, text=True, env=run_env(), timeout=HANG_GUARD_S)
    one_line_error(proc, "--length-penalty", "finite")


def test_a_model_with_nan_weights_is_refused_naming_the_file(model_dir, tmp_path):
    bad = tmp_path / "nan-model"
    bad.mkdir()
    for f in model_dir.iterdir():
        if f.is_file():
            (bad / f.name).write_bytes(f.read_bytes())
    weights = load_file(str(bad / "model.safetensors"))
    save_file({k: torch.full_like(v, float("nan")) for k, v in weights.items()}, str(bad / "model.safetensors"))
    proc = subprocess.run(cli("translate", "--model", str(bad)), input="Ein Hund.\n", capture_output=True, text=True,
                          env=run_env(), timeout=HANG_GUARD_S)
    one_line_error(proc, str(bad / "model.safetensors"), "NaN")


@pytest.mark.parametrize("options", [{"beam": 3}, {"beam": 1}, {"sample": True}], ids=["beam", "greedy", "sample"])
def test_nan_scores_raise_no_output_in_the_api_and_a_4xx_in_the_server(model_dir, options):
    predictor = any2seq.load(model_dir)
    with torch.no_grad():
        for p in predictor.model.parameters():
            p.fill_(float("nan"))  # as a bf16 overflow would leave the activations
    with pytest.raises(NoOutput, match="input 1: no output"):
        predictor.translate(["Ein Hund."], **options)
    limits = Limits(max_body_bytes=20_000, max_inputs=8, max_len=64, max_input_chars=300, max_beam=6, timeout_s=60)
    with TestClient(create_app(predictor, limits), raise_server_exceptions=False) as client:
        response = client.post("/v1/predict", json={"inputs": ["Ein Hund."], **options})
    assert 400 <= response.status_code < 500, response.text
    assert "no output" in response.json()["error"]


def test_the_trainer_json_check_covers_every_trainer_state_field():
    """A field added to TrainerState without a type in STATE_TYPES would be dropped on --resume."""
    from any2seq.runner import STATE_TYPES
    from any2seq.train.loop import TrainerState

    assert set(STATE_TYPES) == set(TrainerState.__dataclass_fields__)
