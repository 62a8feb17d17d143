"""The leave-one-speaker-out driver (benchmarks/speakers.py) on the tiny speech config: it trains a
run per speaker left out, scores that speaker alone, reuses finished runs and refuses a run that left
out someone else. Checks what it writes, not how good the tiny models are."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "benchmarks" / "speakers.py"
pytestmark = pytest.mark.skipif(not (REPO.parent / "shared" / "data" / "fsdd").is_dir(), reason="no FSDD recordings")


def drive(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, str(DRIVER), "--config", "configs/tiny/speech.yaml", "--beam", "1", *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def test_one_run_per_speaker_left_out_then_reused(tmp_path):
    out = tmp_path / "speakers"
    proc = drive("--out", str(out), "--speakers", "george", "nicolas")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "speakers.json").read_text(encoding="utf-8"))
    assert list(report["speakers"]) == ["george", "nicolas"]
    for speaker, row in report["speakers"].items():
        assert Path(row["run"]) == out / speaker and 0 <= row["wer"] and row["minutes"] is not None
    wers = [r["wer"] for r in report["speakers"].values()]
    assert report["worst_wer"] == max(wers) and report["mean_wer"] == pytest.approx(sum(wers) / 2)
    assert "| george |" in proc.stdout and "**mean**" in proc.stdout and "**worst**" in proc.stdout
    made = (out / "george" / "model.safetensors").stat().st_mtime_ns

    again = drive("--out", str(out), "--speakers", "george")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "training without" not in again.stderr  # finished runs are scored, not trained again
    assert (out / "george" / "model.safetensors").stat().st_mtime_ns == made

    wrong = drive("--out", str(tmp_path / "other"), "--speakers", "lucas", "--reuse", f"lucas={out / 'george'}")
    assert wrong.returncode != 0 and "left out 'george', not 'lucas'" in wrong.stderr
