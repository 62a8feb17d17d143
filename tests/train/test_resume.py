"""``--resume`` continues exactly: a run killed with SIGKILL and resumed ends bit-identical to one never stopped."""
import os
import signal
import subprocess
import time

import pytest
import torch

from .helpers import checkpoint, cli, records, run, run_env, train_here, weights, write_config, write_corpus

MAX_STEPS = 40


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    # Dropout > 0, so the resumed run must also restore the RNG; the warmup ends after the kill; the
    # data position crosses an epoch boundary after it; a checkpoint every 5 steps.
    config = write_config(tmp_path / "tiny.yaml", write_corpus(tmp_path / "data"), dropout=0.2,
                          max_steps=MAX_STEPS, valid_every=5, log_every=5, keep_last=2, warmup=10)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train_cmd = cli("train", str(config), "--no-progress", "--out")
    # Run A (never stopped) alongside run B, which is killed as soon as its step-10 checkpoint is in place.
    run_a = subprocess.Popen([*train_cmd, str(whole)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=run_env())
    run_b = subprocess.Popen([*train_cmd, str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=run_env())
    try:
        deadline = time.monotonic() + 600
        while not checkpoint(killed, 10).is_dir():
            assert run_b.poll() is None, "run B ended before it could be killed"
            assert time.monotonic() < deadline, "run B wrote no step-10 checkpoint in 600 s (hung?)"
            time.sleep(0.002)
        os.kill(run_b.pid, signal.SIGKILL)
        assert run_b.wait(timeout=30) == -signal.SIGKILL
        _, err = run_a.communicate(timeout=120)
        assert run_a.returncode == 0, err.decode()[-3000:]
    finally:
        for proc in (run_a, run_b):
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    steps_at_kill = sorted(int(p.name[5:13]) for p in (killed / "checkpoints").glob("step_*"))
    assert 10 <= max(steps_at_kill) < MAX_STEPS, f"the kill did not land mid-run: {steps_at_kill}"
    with open(killed / "metrics.jsonl", "a", encoding="utf-8") as log:
        log.write('{"step": 13, "epoch": 0, "lr": 0.0')  # as if the kill had cut a line short
    run([*train_cmd, str(killed), "--resume"])

    a, b = weights(checkpoint(whole, MAX_STEPS)), weights(checkpoint(killed, MAX_STEPS))
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert different == [], f"the resumed run differs in {len(different)} tensors: {different[:3]}"
    best_a, best_b = weights(whole), weights(killed)  # model.safetensors, the best weights
    assert all(torch.equal(best_a[name], best_b[name]) for name in best_a)

    # The resumed run's log reads as if it had never stopped: no repeated steps, no broken line.
    def log(run_dir):
        # (each start records its precision choice; the resumed run made one more start)
        return [{k: v for k, v in r.items() if k not in ("tok_s", "elapsed_s")} for r in records(run_dir, "step")
                if "precision" not in r]
    assert log(killed) == log(whole)
    assert records(whole, "epoch")[-1]["epoch"] >= 1  # the resumed data position crossed an epoch
    assert (killed / "curves.png").is_file()

    # Resuming a finished run trains no further: no step past max_steps, the weights unchanged.
    state = train_here(config, whole, resume=True)
    assert (state["step"], state["reason"]) == (MAX_STEPS, "max_steps")
    assert [p.name for p in (whole / "checkpoints").iterdir() if p.name > f"step_{MAX_STEPS:08d}"] == []
    c = weights(checkpoint(whole, MAX_STEPS))
    assert all(torch.equal(a[name], c[name]) for name in a)
