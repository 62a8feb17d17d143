"""Each system in float32 and at its best, and any2seq's speed-up over each peer on the same footing.

A CPU with fast bf16 products favours bf16 rows and one without favours fp32, so a table that
compares any2seq's bf16 row with peers in fp32 flatters any2seq on one machine and wrongs it on the
next. Here every system is a family of rows (the rows that run the same system script: ``hf``,
``hf-bf16``, ``hf-w2``, ...), and for each family and measure:

* **fp32**: the family's plain row (float32, one process, one batch at a time);
* **best precision**: the fastest of its one-worker rows in this run (fp32 or bf16), per measure;
* **best configuration** (decoding only): the fastest of all its rows, two-worker rows included.

Decoding ratios come from ``run.decode_ratios`` (side by side when ``--decode-rounds`` decoded again);
training ratios from the one training run each row makes.
"""
from __future__ import annotations

MEASURES = {"train": "train tok/s", "greedy": "greedy sent/s", "beam5": "beam-5 sent/s"}
DECODE_MEASURES = ("greedy", "beam5")


def precision_of(name: str, variants: dict) -> str:
    return variants.get(name, {}).get("precision", "fp32")


def workers_of(name: str, variants: dict) -> int:
    return variants.get(name, {}).get("workers", 1)


def setting(name: str, variants: dict) -> str:
    """How a row runs, in words: "bf16", "fp32, 2 workers"."""
    workers = workers_of(name, variants)
    return precision_of(name, variants) + (f", {workers} workers" if workers > 1 else "")


def families(order: list[str], systems: dict) -> dict[str, list[str]]:
    """family -> its rows in ``order``; a family is named by the first system that runs its script."""
    first = {}
    for name, (script, *_) in systems.items():
        first.setdefault(script, name)
    out: dict[str, list[str]] = {}
    for name in order:
        out.setdefault(first[systems[name][0]], []).append(name)
    return out


def measure_of(result: dict, measure: str) -> float | None:
    if not result.get("ok"):
        return None
    if measure == "train":
        return (result.get("train") or {}).get("tok_s")
    return ((result.get("decode") or {}).get(measure) or {}).get("sent_s")


def _fastest(rows: list[str], results: dict, measure: str, variants: dict) -> dict | None:
    scored = [(measure_of(results[n], measure), n) for n in rows]
    scored = [(v, n) for v, n in scored if v]
    if not scored:
        return None
    value, name = max(scored)
    return {"row": name, "setting": setting(name, variants), "value": value}


def summarize(results: dict, order: list[str], systems: dict, variants: dict) -> dict:
    """{family: {"rows", "fp32": {measure: cell}, "best_precision": {...}, "best_config": {...}}};
    a cell is {"row", "setting", "value"} or None where no row of the family has that measure."""
    summary = {}
    for family, rows in families(order, systems).items():
        one_worker = [n for n in rows if workers_of(n, variants) == 1]
        plain = [n for n in one_worker if precision_of(n, variants) == "fp32"][:1]
        summary[family] = {
            "rows": rows,
            "fp32": {m: _fastest(plain, results, m, variants) for m in MEASURES},
            "best_precision": {m: _fastest(one_worker, results, m, variants) for m in MEASURES},
            "best_config": {m: _fastest(rows, results, m, variants) for m in DECODE_MEASURES},
        }
    return summary


def _ratio(ours: dict | None, peer: dict | None, measure: str, over: dict) -> dict | None:
    """any2seq's speed-up of row ``ours`` over row ``peer``: the decode rounds' median for decoding."""
    if not ours or not peer:
        return None
    cell = {"ours": ours["row"], "peer": peer["row"], "ours_setting": ours["setting"],
            "peer_setting": peer["setting"]}
    if measure == "train":
        return {**cell, "ratio": round(ours["value"] / peer["value"], 3), "rounds": 1}
    r = over.get((ours["row"], measure), {}).get(peer["row"])
    return None if r is None else {**cell, "ratio": r["median"], "min": r["min"], "max": r["max"],
                                   "rounds": r["rounds"]}


def speedups(summary: dict, ratio_rows: list[dict], ours: str = "any2seq") -> list[dict]:
    """One entry per peer family and measure: any2seq best / peer best, fp32 / fp32 and (decoding)
    best configuration / best configuration; each None where a side is missing."""
    if ours not in summary:
        return []
    over = {(row["system"], row["mode"]): row["over"] for row in ratio_rows}
    mine, out = summary[ours], []
    for family, peer in summary.items():
        if family == ours:
            continue
        for m in MEASURES:
            entry = {"peer": family, "measure": m,
                     "best_precision": _ratio(mine["best_precision"][m], peer["best_precision"][m], m, over),
                     "fp32": _ratio(mine["fp32"][m], peer["fp32"][m], m, over),
                     "best_config": (_ratio(mine["best_config"][m], peer["best_config"][m], m, over)
                                     if m in DECODE_MEASURES else None)}
            if any(entry[k] for k in ("best_precision", "fp32", "best_config")):
                out.append(entry)
    return out


def _value(cell: dict | None, digits: int, with_setting: bool) -> str:
    if not cell:
        return "—"
    text = f"{cell['value']:,.{digits}f}"
    return f"{text} ({cell['setting']})" if with_setting else text


def precision_table(summary: dict, labels: dict) -> str:
    """Each family's fp32 row and best-precision row, per measure (a family with no figure, none)."""
    lines = ["| system | row | " + " | ".join(MEASURES.values()) + " |", "|---|---|---|---|---|"]
    for family, s in summary.items():
        if not any(s["best_precision"].values()):
            continue
        for key, row in (("fp32", "fp32"), ("best_precision", "best precision")):
            cells = [_value(s[key][m], 0 if m == "train" else 1, key != "fp32") for m in MEASURES]
            lines.append(f"| {labels[family]} | {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def config_table(summary: dict, labels: dict) -> str:
    """Each family's fastest decoding row, precision and workers included."""
    lines = ["| system | greedy sent/s | beam-5 sent/s |", "|---|---|---|"]
    for family, s in summary.items():
        if any(s["best_config"].values()):
            lines.append(f"| {labels[family]} | " + " | ".join(_value(s["best_config"][m], 1, True)
                                                                  for m in DECODE_MEASURES) + " |")
    return "\n".join(lines)


def _ratio_cell(cell: dict | None) -> str:
    if not cell:
        return "—"
    spread = f", {cell['min']:.2f}-{cell['max']:.2f} over {cell['rounds']} rounds" if cell["rounds"] > 1 else ""
    return f"{cell['ratio']:.2f}x ({cell['ours_setting']} / {cell['peer_setting']}{spread})"


def speedup_table(entries: list[dict], labels: dict) -> str:
    """any2seq over each peer: best / best, fp32 / fp32, best configuration / best configuration."""
    if not entries:
        return ""
    lines = ["| peer | measure | any2seq best / peer best | any2seq fp32 / peer fp32 "
             "| best configuration / best configuration |", "|---|---|---|---|---|"]
    for e in entries:
        cells = [_ratio_cell(e[k]) for k in ("best_precision", "fp32", "best_config")]
        lines.append(f"| {labels[e['peer']]} | {MEASURES[e['measure']]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_section(summary: dict, entries: list[dict], labels: dict, cpu: str, how: str) -> str:
    """The three tables with their headings (each naming the CPU), as markdown."""
    parts = [f"Each system in float32 and at its best precision (the faster of its precisions in this run, "
             f"per column; one process, one batch at a time), on {cpu}:\n\n{precision_table(summary, labels)}",
             f"Each system at its best decoding configuration (precision and workers), on {cpu}:\n\n"
             f"{config_table(summary, labels)}"]
    table = speedup_table(entries, labels)
    if table:
        parts.append(f"any2seq's speed-up over each peer, each at its best and each in fp32, on {cpu} "
                     f"(decoding: {how}):\n\n{table}")
    return "\n\n".join(parts)
