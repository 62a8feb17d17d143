"""The benchmark harness (benchmarks/run.py) end to end on a micro setting: any2seq (fp32, bf16 and
its fp32 two-worker decoding row) and the plain PyTorch baseline in the main venv (no peer venv), a
few steps, a few sentences, the micro scaling plan. Checks the shape of what it writes, not the numbers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from any2seq.precision import cpu_name

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "benchmarks" / "run.py"
MULTI30K = REPO / "data" / "multi30k"

pytestmark = pytest.mark.skipif(not (MULTI30K / "train.de.gz").is_file(), reason="no Multi30k data")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    args = [sys.executable, str(RUN), "--systems", "any2seq,any2seq-bf16,any2seq-w2,torch", "--device", "cpu",
            "--threads", "1", "--steps", "3", "--timing-warmup", "1", "--sentences", "20", "--batch-size", "8", "--max-len", "8", "--vocab", "1000",
            "--d-model", "32", "--ff", "64", "--layers", "1", "--heads", "2", "--batch-tokens", "500",
            "--scaling", "micro", "--decode-rounds", "1", "--workdir", str(root / "work"), "--results", str(root / "results"),
            "--name", "smoke", "--peer-python", str(root / "no-peer-venv" / "bin" / "python")]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    return root / "results", proc.stdout, args, env


def test_json_holds_every_system_and_the_scaling_part(bench):
    results, *_ = bench
    report = json.loads((results / "smoke.json").read_text(encoding="utf-8"))
    assert {"meta", "spec", "probe", "systems", "scaling"} <= report.keys()
    assert report["probe"]["cpu"]["gflop_s"] > 0
    assert report["meta"]["steps"] == 3 and report["meta"]["sentences"] == 20
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO)
    if head.returncode == 0:  # which code made the numbers
        assert report["meta"]["commit"].split("+")[0] == head.stdout.strip()
    assert set(report["systems"]) == {"any2seq", "any2seq-bf16", "any2seq-w2", "torch"}
    assert report["probe"]["cpu-bf16"]["dtype"] == "bfloat16"
    assert report["systems"]["any2seq-bf16"]["train"]["probe_dtype"] == "bfloat16"
    assert report["systems"]["any2seq"]["train"]["probe_dtype"] == "float32"
    for name, result in report["systems"].items():
        assert result["ok"], (name, result.get("error"))
        train = result["train"]
        if name == "any2seq-w2":  # decodes any2seq's model, three batches two at a time
            assert train is None and result["model_dir"] == report["systems"]["any2seq"]["model_dir"]
            for mode in ("greedy", "beam5"):
                assert result["decode"][mode]["bleu"] == report["systems"]["any2seq"]["decode"][mode]["bleu"]
        else:
            assert train["steps"] == 3 and train["tok_s"] > 0 and train["params"] > 0
            assert 0 < train["share_of_peak"] and train["gflop_s"] > 0
        assert result["peak_rss_mb"] > 0
        for mode in ("greedy", "beam5"):
            decode = result["decode"][mode]
            assert decode["sentences"] == 20 and decode["sent_s"] > 0 and 0 <= decode["bleu"] <= 100
            # --decode-rounds 1: a second pass of the systems that keep their model, not of torch
            assert len(decode["round_seconds"]) == decode["passes"] == (1 if name == "torch" else 2)
            assert all(s > 0 for s in decode["round_seconds"])
            assert 0 <= decode["mean_out_tokens"] < 12  # --max-len 8, counted again on the detokenised text
            assert len(Path(decode["hyps"]).read_text(encoding="utf-8").splitlines()) == 20
    ratios = {(row["system"], row["mode"]): row["over"] for row in report["decode_ratios"]}
    assert set(ratios) == {(n, m) for n in ("any2seq", "any2seq-bf16", "any2seq-w2") for m in ("greedy", "beam5")}
    for over in ratios.values():  # torch decoded once: its ratio is that pass's
        assert set(over) == {"torch"} and over["torch"]["rounds"] == 1 and over["torch"]["median"] > 0
    scaling = report["scaling"]
    assert [row["length"] for row in scaling["decode"]["rows"]] == [4, 8]
    assert all(row["cache_s"] > 0 and row["no_cache_s"] > 0 for row in scaling["decode"]["rows"])
    for axis in ("batch_tokens", "width"):
        assert scaling["train"][axis] and all(p["tok_s"] > 0 and p["peak_rss_mb"] > 0 for p in scaling["train"][axis])


def tables(stdout: str) -> dict[str, list[str]]:
    """Each markdown table in ``stdout`` under the line of text before it: heading -> table lines."""
    out, heading = {}, None
    for line in stdout.splitlines():
        if line.startswith("|"):
            out.setdefault(heading, []).append(line)
        elif line.strip():
            heading = line
    return out


def test_table_and_charts(bench):
    results, stdout, *_ = bench
    found = tables(stdout)
    main = [t for t in found.values() if t[0].startswith("| system | train tok/s |")]
    assert len(main) == 1 and main[0][0].count("|") == 12
    labels = ["any2seq", "any2seq, bf16 autocast", "any2seq, 2 workers", "plain PyTorch (no KV cache)"]
    assert [line.split("|")[1].strip() for line in main[0][2:]] == labels
    assert all(row.count("|") == 12 for row in main[0])
    title = [line for line in stdout.splitlines() if line.startswith("any2seq benchmark ")]
    assert len(title) == 1 and f"({cpu_name()})" in title[0]
    assert (results / "smoke.md").read_text(encoding="utf-8").count("| system | train tok/s |") == 1
    [(heading, ratios)] = [(h, t) for h, t in found.items() if h.startswith("Decoding speed, any2seq over each")]
    assert heading.startswith("Decoding speed, any2seq over each other system (the median of 1 rounds")
    assert len(ratios) == 2 + 6 and all(line.count("|") == 4 and line.endswith("x |") for line in ratios[2:])
    assert {line.split("|")[1].strip() for line in ratios[2:]} == set(labels[:3])
    for png in ("smoke.png", "smoke-scaling.png"):
        assert (results / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_system_in_fp32_and_at_its_best(bench):
    """The JSON's best-of summary and speed-ups are consistent with the rows they name, and the
    three tables print them under headings that name the CPU (structure only: no figure is judged)."""
    results, stdout, *_ = bench
    report = json.loads((results / "smoke.json").read_text(encoding="utf-8"))
    systems, summary = report["systems"], report["best"]
    assert set(summary) == {"any2seq", "torch"}
    assert summary["any2seq"]["rows"] == ["any2seq", "any2seq-bf16", "any2seq-w2"]

    def figure(name, measure):
        result = systems[name]
        return result["train"]["tok_s"] if measure == "train" else result["decode"][measure]["sent_s"]

    for family, one_worker, every in (("any2seq", ["any2seq", "any2seq-bf16"], ["any2seq", "any2seq-bf16",
                                                                                  "any2seq-w2"]),
                                      ("torch", ["torch"], ["torch"])):
        s = summary[family]
        for measure in ("train", "greedy", "beam5"):
            assert s["fp32"][measure]["row"] == family and s["fp32"][measure]["setting"] == "fp32"
            cell = s["best_precision"][measure]
            assert cell["row"] in one_worker and cell["value"] == figure(cell["row"], measure)
            assert cell["value"] == max(figure(n, measure) for n in one_worker)
        for measure in ("greedy", "beam5"):
            cell = s["best_config"][measure]
            assert cell["row"] in every and cell["value"] == max(figure(n, measure) for n in every)
    entries = {e["measure"]: e for e in report["speedups"]}
    assert [e["peer"] for e in report["speedups"]] == ["torch"] * 3 and set(entries) == {"train", "greedy", "beam5"}
    for measure, e in entries.items():
        keys = ("best_precision", "fp32") + (("best_config",) if measure != "train" else ())
        for key in keys:
            assert (e[key]["ours"], e[key]["peer"]) == (summary["any2seq"][key][measure]["row"],
                                                        summary["torch"][key][measure]["row"])
            assert e[key]["ratio"] > 0 and e[key]["rounds"] == 1  # torch decodes once, trains once
        assert measure != "train" or e["best_config"] is None

    found, cpu = tables(stdout), cpu_name()
    def section(start):
        [(heading, table)] = [(h, t) for h, t in found.items() if h and h.startswith(start)]
        assert f"on {cpu}" in heading
        return [[cell.strip() for cell in line.split("|")[1:-1]] for line in table[2:]]

    precision = section("Each system in float32 and at its best precision")
    assert [row[:2] for row in precision] == [["any2seq", "fp32"], ["any2seq", "best precision"],
                                              ["plain PyTorch (no KV cache)", "fp32"],
                                              ["plain PyTorch (no KV cache)", "best precision"]]
    assert all(cell.endswith(("(fp32)", "(bf16)")) for row in precision[1::2] for cell in row[2:])
    config = section("Each system at its best decoding configuration")
    assert [row[0] for row in config] == ["any2seq", "plain PyTorch (no KV cache)"] and all(len(r) == 3 for r in config)
    ratio_rows = section("any2seq's speed-up over each peer")
    assert [row[:2] for row in ratio_rows] == [["plain PyTorch (no KV cache)", m] for m in
                                               ("train tok/s", "greedy sent/s", "beam-5 sent/s")]
    assert ratio_rows[0][4] == "—" and all("x (" in cell for row in ratio_rows[1:] for cell in row[2:])


def test_decode_only_decodes_the_models_left_in_the_workdir(bench):
    results, _, args, env = bench
    again = [a for a in args if a != "micro"]
    again[again.index("--scaling")] = "--decode-only"
    again[again.index("smoke")] = "again"
    proc = subprocess.run(again, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    report = json.loads((results / "again.json").read_text(encoding="utf-8"))
    first = json.loads((results / "smoke.json").read_text(encoding="utf-8"))
    assert report["meta"]["decode_only"] and report["scaling"] is None
    assert report["systems"]["torch"]["error"] == "skipped: --decode-only, it keeps no model"
    for name in ("any2seq", "any2seq-bf16", "any2seq-w2"):
        result = report["systems"][name]
        assert result["ok"] and result["train"] is None
        for mode in ("greedy", "beam5"):  # the same model decodes the same sentences again
            assert result["decode"][mode]["bleu"] == first["systems"][name]["decode"][mode]["bleu"]
            assert result["decode"][mode]["sent_s"] > 0

