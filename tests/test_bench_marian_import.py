"""benchmarks/marian_import.py end to end at a tiny size (d 32, 2+2 layers, 20 sentences): a row for
every system, precision and search, and any2seq's fp32 outputs equal to HF ``generate``'s. Checks
what the bench writes, never its speeds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "marian_import.py"

pytest.importorskip("transformers", reason="transformers is not installed (pip install 'any2seq[hf]')")
pytestmark = pytest.mark.skipif(not (REPO / "data" / "multi30k" / "train.de.gz").is_file(), reason="no Multi30k data")

N, MAX_LEN = 20, 24


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("marian-bench")
    args = [sys.executable, str(BENCH), "--shape", "tiny", "--train-steps", "120", "--sentences", str(N),
            "--batch-size", "8", "--max-len", str(MAX_LEN), "--threads", "1", "--rounds", "2",
            "--workdir", str(root / "work"),
            "--out", str(root / "result.json")]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    return json.loads((root / "result.json").read_text(encoding="utf-8")), proc.stdout


def test_every_system_precision_and_search_has_a_row(bench):
    result, stdout = bench
    rows = {(r["system"], r["precision"].split(":")[0], r["search"]) for r in result["rows"]}
    assert rows == {(system, precision, search) for search in ("greedy", "beam5")
                    for system, precisions in (("hf", ("fp32", "bf16-autocast", "bf16")),
                                               ("any2seq", ("fp32", "bf16", "auto")))
                    for precision in precisions}
    assert all("error" not in r and r["sentences"] == N for r in result["rows"])
    assert all({"seconds", "sent_per_s", "tokens_per_s"} <= set(r) for r in result["rows"])  # reported, not judged
    assert result["cpu"] and result["shape"]["d_model"] == 32 and result["settings"]["max_len"] == MAX_LEN
    assert result["settings"]["rounds"] == 2 and stdout.count("| any2seq | fp32 | beam5 |") == 1  # one row, best round
    assert set(result["best"]) == {"greedy", "beam5"}
    assert "| any2seq | fp32 | beam5 |" in stdout and "beam5: any2seq (" in stdout


def test_fp32_outputs_equal_hf_generate(bench):
    result, _ = bench
    for search in ("greedy", "beam5"):
        same = {(r["system"], r["precision"]): r["same_as_hf_fp32"] for r in result["rows"] if r["search"] == search}
        assert same[("hf", "fp32")] == N and same[("any2seq", "fp32")] == N, same


def test_outputs_stop_at_eos_as_well_as_at_the_limit(bench):
    result, _ = bench  # the briefly trained model says </s> before the limit: stopping is compared too
    assert all(0 < r["mean_out_len"] < MAX_LEN for r in result["rows"] if r["precision"] == "fp32")
