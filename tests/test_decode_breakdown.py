"""benchmarks/decode_breakdown.py on the tiny trained Transformer: every part of decoding it times
shows up with a time. How the parts add up is the tool's business, not a test's: timings on a shared
machine are noise at this size (benchmarks/README.md)."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_breakdown_times_every_part_of_a_beam_search(trained, corpus):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "decode_breakdown.py"), str(trained.dir),
                           "--test", str(corpus / "test.de"), "--sentences", "8", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split("|")[1].strip(): float(line.split("|")[2]) for line in proc.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| part")}
    parts = ["decoder layers", "output layer", "log-softmax", "encoder", "top-k selection", "state reordering",
             "stopping test", "everything else (tokenising, search loop)"]
    assert set(parts) <= rows.keys() and all(rows[p] > 0 for p in parts[:3])
    assert rows["every linear layer (output layer and encoder too)"] > 0
    assert rows["every attention product (encoder too)"] > 0
    assert float(proc.stdout.split(" sentences in ")[1].split(" s ")[0]) > 0  # the total is reported
