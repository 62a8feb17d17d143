"""benchmarks/best.py on made-up results: which row is each system's fp32 row, its best precision and
its best decoding configuration, and which rows each speed-up compares (the figures are invented;
no timing is measured here)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import best  # noqa: E402
from run import LABELS, SYSTEMS, VARIANTS  # noqa: E402


def row(train=None, greedy=None, beam5=None, ok=True) -> dict:
    decode = {m: {"sent_s": v} for m, v in (("greedy", greedy), ("beam5", beam5)) if v is not None}
    return {"ok": ok, "train": {"tok_s": train} if train else None, "decode": decode}


# any2seq: bf16 trains faster, fp32 decodes faster, and two fp32 workers decode faster still;
# HF: fp32 trains faster, bf16 decodes faster; torch has one row; onmt failed.
RESULTS = {
    "any2seq": row(100, 50, 20), "any2seq-bf16": row(200, 40, 10), "any2seq-w2": row(None, 90, 30),
    "any2seq-bf16-w2": row(None, 70, 25), "torch": row(80, 5, 1), "hf": row(90, 30, 8),
    "hf-bf16": row(60, 35, 9), "hf-w2": row(None, 33, 12), "onmt": row(ok=False),
}
ORDER = [n for n in SYSTEMS if n in RESULTS]


def over(ours: str, mode: str) -> dict:
    """decode_ratios' shape: a distinct invented median per (ours, peer) pair, so the lookup shows."""
    peers = [n for n in ORDER if not n.startswith("any2seq") and RESULTS[n]["ok"]]
    return {p: {"median": float(ORDER.index(ours) * 100 + ORDER.index(p)), "min": 0.0, "max": 0.0, "rounds": 2}
            for p in peers}


RATIO_ROWS = [{"system": n, "mode": m, "over": over(n, m)} for n in ORDER if n.startswith("any2seq")
              for m in ("greedy", "beam5")]


def test_families_group_the_rows_of_one_script():
    assert best.families(ORDER, SYSTEMS) == {
        "any2seq": ["any2seq", "any2seq-bf16", "any2seq-w2", "any2seq-bf16-w2"], "torch": ["torch"],
        "hf": ["hf", "hf-bf16", "hf-w2"], "onmt": ["onmt"]}
    assert best.families(["ct2-hf", "ct2-hf-w2", "hf-bf16-w2"], SYSTEMS) == {"ct2-hf": ["ct2-hf", "ct2-hf-w2"],
                                                                             "hf": ["hf-bf16-w2"]}


def test_fp32_best_precision_and_best_configuration_rows():
    s = best.summarize(RESULTS, ORDER, SYSTEMS, VARIANTS)
    pick = {f: {k: {m: (c or {}).get("row") for m, c in s[f][k].items()} for k in ("fp32", "best_precision",
                                                                                    "best_config")} for f in s}
    assert pick["any2seq"] == {"fp32": {"train": "any2seq", "greedy": "any2seq", "beam5": "any2seq"},
                               "best_precision": {"train": "any2seq-bf16", "greedy": "any2seq", "beam5": "any2seq"},
                               "best_config": {"greedy": "any2seq-w2", "beam5": "any2seq-w2"}}
    assert pick["hf"] == {"fp32": {"train": "hf", "greedy": "hf", "beam5": "hf"},
                          "best_precision": {"train": "hf", "greedy": "hf-bf16", "beam5": "hf-bf16"},
                          "best_config": {"greedy": "hf-bf16", "beam5": "hf-w2"}}
    assert pick["torch"]["best_precision"] == pick["torch"]["fp32"] == {m: "torch" for m in best.MEASURES}
    assert pick["onmt"]["fp32"] == {m: None for m in best.MEASURES}  # a failed row is no one's best
    assert s["any2seq"]["best_precision"]["train"] == {"row": "any2seq-bf16", "setting": "bf16", "value": 200}
    assert s["hf"]["best_config"]["beam5"]["setting"] == "fp32, 2 workers"


def test_speedups_compare_best_with_best_and_fp32_with_fp32():
    s = best.summarize(RESULTS, ORDER, SYSTEMS, VARIANTS)
    entries = {(e["peer"], e["measure"]): e for e in best.speedups(s, RATIO_ROWS)}
    assert set(entries) == {(p, m) for p in ("torch", "hf") for m in best.MEASURES}  # onmt has no figure
    hf_beam = entries["hf", "beam5"]
    pairs = {k: (hf_beam[k]["ours"], hf_beam[k]["peer"]) for k in ("best_precision", "fp32", "best_config")}
    assert pairs == {"best_precision": ("any2seq", "hf-bf16"), "fp32": ("any2seq", "hf"),
                     "best_config": ("any2seq-w2", "hf-w2")}
    for k, (ours, peer) in pairs.items():  # the decode rounds' median of exactly that pair
        assert hf_beam[k]["ratio"] == over(ours, "beam5")[peer]["median"] and hf_beam[k]["rounds"] == 2
    train = entries["hf", "train"]
    assert (train["best_precision"]["ours"], train["best_precision"]["peer"]) == ("any2seq-bf16", "hf")
    assert train["best_precision"]["ratio"] == round(200 / 90, 3) and train["fp32"]["ratio"] == round(100 / 90, 3)
    assert train["best_config"] is None


def test_tables_show_two_rows_per_system_and_name_the_cpu():
    s = best.summarize(RESULTS, ORDER, SYSTEMS, VARIANTS)
    text = best.report_section(s, best.speedups(s, RATIO_ROWS), LABELS, "Test CPU 9000", "two rounds")
    precision = [line for line in best.precision_table(s, LABELS).splitlines()[2:]]
    assert [line.split("|")[1:3] for line in precision] == [  # onmt, which failed, has no row
        [f" {LABELS[f]} ", f" {r} "] for f in ("any2seq", "torch", "hf") for r in ("fp32", "best precision")]
    assert "| any2seq | best precision | 200 (bf16) | 50.0 (fp32) | 20.0 (fp32) |" in precision
    assert "| HF Marian | 35.0 (bf16) | 12.0 (fp32, 2 workers) |" in best.config_table(s, LABELS)
    assert text.count("on Test CPU 9000") == 3
    table = best.speedup_table(best.speedups(s, RATIO_ROWS), LABELS).splitlines()
    assert len(table) == 2 + 6 and all(line.count("|") == 6 for line in table)
