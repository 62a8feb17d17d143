"""benchmarks/load_test.py, briefly: it serves the model as a subprocess, loads it, stops it, reports."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "load_test.py"


@pytest.mark.load_test
def test_load_test_reports_throughput_latency_memory_and_batching(trained, tmp_path):
    out = tmp_path / "load.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--model", str(trained.dir), "--clients", "4",
                           "--seconds", "3", "--json", str(out)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["requests"] > 0 and report["failed"] == 0 and report["requests_per_s"] > 0
    assert 0 < report["p50_ms"] <= report["p99_ms"] and report["peak_rss_mib"] > 50
    assert report["largest_batch"] >= 1 and report["batches"]["requests"] >= report["requests"]
    for row in ("requests/s", "p50 latency ms", "p99 latency ms", "failed requests", "peak RSS MiB", "largest batch"):
        assert row in done.stdout


def test_load_test_refuses_a_host_that_is_not_loopback(trained):
    done = subprocess.run([sys.executable, str(SCRIPT), "--model", str(trained.dir), "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "only loopback" in done.stderr
