"""benchmarks/engines.py on the tiny trained model: every row is timed and reported, CTranslate2
decodes the exported copy to the same lines, and the ratios come out of the rows. No speed is checked."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ctranslate2")

REPO = Path(__file__).resolve().parents[1]


def test_every_engine_and_worker_count_is_timed_on_the_same_lines(trained, corpus, tmp_path):
    out = tmp_path / "engines.json"
    src = tmp_path / "src.de"
    src.write_text("\n".join(s for s, _ in trained.pairs[:4]) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "engines.py"), "--model", str(trained.dir),
                           "--ct2", str(tmp_path / "ct2"), "--src", str(src), "--rounds", "1", "--beams", "1",
                           "--dtypes", "fp32,int8", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["sentences"] == 4
    rows = {(r["system"], r["workers"], r["dtype"]): r for r in report["rows"]}
    assert set(rows) == {(system, workers, dtype) for system in ("any2seq", "CTranslate2") for workers in (1, 2)
                         for dtype in ("fp32", "int8")}
    # memorised pairs: both engines find the same greedy lines in fp32, whatever the worker count
    assert all(r["same_lines_as_any2seq_x1"] == 4 for key, r in rows.items() if key[2] == "fp32")
    assert set(report["ratios"]["beam1"]) == {"one_worker", "each_at_best", "each_at_best_fp32"}
    assert "| 1 | CTranslate2 | 2 | fp32 |" in proc.stdout and "each at best" in proc.stdout
