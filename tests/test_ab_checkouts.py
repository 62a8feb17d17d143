"""benchmarks/ab_checkouts.py on the tiny trained Transformer, this checkout against a copy of
itself: both decode every batch, and the same code decodes the same text."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_two_checkouts_decode_the_same_batches_in_turn(trained, corpus):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ab_checkouts.py"), str(REPO), str(trained.dir),
                           "--test", str(corpus / "test.de"), "--sentences", "40", "--rounds", "2", "--beam", "2",
                           "--threads", "1"],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["round 1", "round 2"]
    n = min(40, len((corpus / "test.de").read_text(encoding="utf-8").splitlines()))
    assert f"over {2 * -(-n // 32)} batch pairs: median" in lines[2]  # every batch of 32, in both rounds
    assert lines[3].startswith("outputs: identical")


def test_a_directory_without_the_package_is_refused(trained, tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ab_checkouts.py"), str(tmp_path), str(trained.dir)],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert proc.returncode == 1 and "no src/any2seq package there" in proc.stderr
