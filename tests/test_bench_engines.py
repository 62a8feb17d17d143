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
                           "--repeat", "2", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["sentences"] == 8 and report["repeat"] == 2  # the 4 lines twice over in each run
    rows = {(r["system"], r["workers"], r["dtype"]): r for r in report["rows"]}
    assert set(rows) == {(system, workers, "fp32") for system in ("any2seq", "CTranslate2") for workers in (1, 2)}
    # memorised pairs: both engines find the same greedy lines, whatever the worker count
    assert all(r["same_lines_as_any2seq_x1"] == 8 for r in rows.values())
    assert all(r["bleu"] is None for r in rows.values())  # no --ref for a --src of one's own
    assert set(report["ratios"]["beam1"]) == {"one_worker", "each_at_best"}
    assert "| 1 | CTranslate2 | 2 | fp32 |" in proc.stdout and "each at best" in proc.stdout


def test_rows_cover_every_engine_worker_count_and_dtype_asked_for():
    """The int8 rows run the same translate processes with --dtype int8 (tests/test_int8.py runs that
    flag); here, only that they are asked for, fp32 first as the reference lines."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import engines

    rows = engines.rows_for(["fp32", "int8"])
    assert len(rows) == 8 and rows[0] == ("any2seq", "torch", 1, "fp32")
    assert {(name, dtype) for name, _, _, dtype in rows} == {(n, d) for n in ("any2seq", "CTranslate2")
                                                             for d in ("fp32", "int8")}
    # a CTranslate2 build without bfloat16 on this CPU would run it as another type: no such row
    rows = engines.rows_for(["fp32", "bf16"], {"float32", "int8"})
    assert {(name, dtype) for name, _, _, dtype in rows} == {("any2seq", "fp32"), ("CTranslate2", "fp32"),
                                                             ("any2seq", "bf16")}


@pytest.mark.parametrize("dtypes", ["int8", "fp32,int4"])
def test_dtypes_without_the_fp32_reference_or_unknown_are_refused_in_one_line(dtypes, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "engines.py"), "--model", str(tmp_path),
                           "--dtypes", dtypes], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and f"--dtypes {dtypes}" in proc.stderr
