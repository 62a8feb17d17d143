"""One trained model decoded by any2seq and by CTranslate2 (its `any2seq export --ct2` copy), each at
one worker and at two, as whole `any2seq translate` processes -- what a user runs.

    python benchmarks/engines.py --model runs/demo [--rounds 5] [--sentences 1000] [--out engines.json]

Each round runs every row once, in turn, so a machine whose speed drifts slows all rows alike. A
one-line run of the same command is timed beside each full run, and a row's decoding time is its
fastest full run less its fastest one-line run: start-up (imports, loading, the precision probe)
is not counted as decoding, and a slow start in one round does not leak into the figure. Both
engines run each precision of `--dtypes` (default fp32: the float32 weights any2seq exported, so both
decode the same numbers; `--dtypes fp32,bf16,int8` adds `any2seq translate --dtype bf16|int8` and
CTranslate2's `compute_type=bfloat16|int8` where this CPU's CTranslate2 build computes in it, and
leaves out, saying so, a row it would silently run in another type); the table says how many output
lines agree with any2seq's one-worker fp32 lines and, given references (`--ref`; by default
test_2016_flickr.en beside the default `--src`), each row's BLEU; "each at its best" is each engine's
fastest row.
"""
from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from any2seq.data.text import read_lines  # noqa: E402
from any2seq.errors import UserError  # noqa: E402
from any2seq.metrics import bleu_chrf  # noqa: E402
from any2seq.precision import cpu_name  # noqa: E402

ENGINES = [("any2seq", "torch"), ("CTranslate2", "ct2")]
DTYPES = ("fp32", "bf16", "int8")  # any2seq decodes in each on a CPU; CTranslate2 where its build can
CT2_TYPES = {"fp32": "float32", "bf16": "bfloat16", "int8": "int8"}  # as `translate --engine ct2 --dtype` maps them
DEFAULT_SRC = ROOT / "data/multi30k/test_2016_flickr.de.gz"


def rows_for(dtypes: list[str], ct2_types=frozenset(CT2_TYPES.values())) -> list[tuple[str, str, int, str]]:
    """(system, engine, workers, dtype) of every row, fp32 first: the reference lines. ``ct2_types``:
    the compute types CTranslate2 supports on this CPU (it would run the others in another type)."""
    return [(name, engine, workers, dtype) for dtype in dtypes for name, engine in ENGINES for workers in (1, 2)
            if engine != "ct2" or CT2_TYPES[dtype] in ct2_types]


def translate(model: Path, engine: str, workers: int, beam: int, src: Path, batch_size: int,
              dtype: str = "fp32") -> tuple[float, str]:
    cmd = [sys.executable, "-m", "any2seq", "translate", "--model", str(model), "--engine", engine,
           "--workers", str(workers), "--beam", str(beam), "--dtype", dtype] + (
              ["--batch-size", str(batch_size)] if batch_size else [])
    with open(src, "rb") as stdin:
        start = time.perf_counter()
        done = subprocess.run(cmd, stdin=stdin, capture_output=True, check=False)
        seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr.decode(errors='replace')[-2000:]}")
    return seconds, done.stdout.decode()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="a translation model directory from `any2seq train`")
    ap.add_argument("--ct2", type=Path, help="its CTranslate2 export (default: MODEL-ct2, made if missing)")
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC)
    ap.add_argument("--ref", type=Path, help="reference translations: each row's BLEU "
                                              "(default: test_2016_flickr.en with the default --src)")
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1,
                    help="decode the sentences this many times over in each run: on a fast CPU a 1,000-line "
                         "decode takes about a second, and the noise in the start-up subtracted would swamp it")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32,
                    help="sentences per batch; 0: each engine's own default (any2seq: batches of tokens)")
    ap.add_argument("--beams", type=int, nargs="+", default=[1, 5], help="beam sizes to time (1 = greedy)")
    ap.add_argument("--dtypes", default="fp32", help=f"comma-separated precisions to time, of {', '.join(DTYPES)}")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)

    dtypes = args.dtypes.split(",")
    if not set(dtypes) <= set(DTYPES) or "fp32" not in dtypes:
        raise UserError(f"--dtypes {args.dtypes}: give fp32 (the reference lines) and any of {', '.join(DTYPES)}")
    dtypes = sorted(set(dtypes), key=DTYPES.index)
    if args.repeat < 1:
        raise UserError(f"--repeat {args.repeat}: give 1 or more")
    import ctranslate2

    ct2_types = ctranslate2.get_supported_compute_types("cpu")
    ROWS = rows_for(dtypes, ct2_types)
    for dtype in dtypes:
        if CT2_TYPES[dtype] not in ct2_types:
            print(f"no CTranslate2 {dtype} rows: its build computes in {', '.join(sorted(ct2_types))} on this CPU",
                  file=sys.stderr)
    ref_path = args.ref or (DEFAULT_SRC.with_name("test_2016_flickr.en.gz") if args.src == DEFAULT_SRC else None)
    ct2 = args.ct2 or args.model.with_name(args.model.name + "-ct2")
    if not ct2.exists():
        subprocess.run([sys.executable, "-m", "any2seq", "export", "--ct2", str(args.model), str(ct2)], check=True)
    lines = list(itertools.islice(read_lines(args.src), args.sentences))
    if not lines:
        raise UserError(f"{args.src}: no lines to translate")
    refs = list(itertools.islice(read_lines(ref_path), len(lines))) if ref_path else None
    if refs is not None and len(refs) != len(lines):
        raise UserError(f"{ref_path}: {len(refs)} lines for {len(lines)} sources")
    # BLEU is unchanged by repeating: every sentence's statistics count N times over
    lines, refs = lines * args.repeat, refs and refs * args.repeat
    models = {"torch": args.model, "ct2": ct2}
    fastest: dict[tuple, float] = {}  # (system, workers, dtype, beam) -> the fastest full run, seconds
    startups: dict[tuple, float] = {}  # ... -> the fastest one-line run
    outputs: dict[tuple, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        full, one = Path(tmp, "full.txt"), Path(tmp, "one.txt")
        full.write_text("\n".join(lines) + "\n", encoding="utf-8")
        one.write_text(lines[0] + "\n", encoding="utf-8")
        for r in range(args.rounds):
            for beam in args.beams:
                for name, engine, workers, dtype in ROWS:
                    key = (name, workers, dtype, beam)
                    startup, _ = translate(models[engine], engine, workers, beam, one, args.batch_size, dtype)
                    seconds, out = translate(models[engine], engine, workers, beam, full, args.batch_size, dtype)
                    fastest[key] = min(fastest.get(key, float("inf")), seconds)
                    startups[key] = min(startups.get(key, float("inf")), startup)
                    outputs[key] = out.splitlines()
                    print(f"round {r + 1} beam {beam} {name} x{workers} {dtype}: {seconds:.2f} s, "
                          f"start-up {startup:.2f} s", file=sys.stderr)
    n = len(lines)
    net = {key: seconds - startups[key] for key, seconds in fastest.items()}
    rows, ratios = [], {}
    for beam in args.beams:
        reference = outputs[("any2seq", 1, "fp32", beam)]
        rate = {}
        for name, _, workers, dtype in ROWS:
            key = (name, workers, dtype, beam)
            same = sum(a == b for a, b in zip(outputs[key], reference))
            rate[key[:3]] = n / net[key]
            rows.append({"beam": beam, "system": name, "workers": workers, "dtype": dtype,
                         "seconds": round(net[key], 2), "start_up_s": round(startups[key], 2),
                         "sent_per_s": round(n / net[key], 1), "same_lines_as_any2seq_x1": same,
                         "bleu": round(bleu_chrf(outputs[key], refs)["bleu"], 2) if refs else None})

        def best(system: str, among=tuple(dtypes)) -> float:
            return max(v for (name, _, dtype), v in rate.items() if name == system and dtype in among)

        ratios[f"beam{beam}"] = {
            "one_worker": round(rate[("any2seq", 1, "fp32")] / rate[("CTranslate2", 1, "fp32")], 2),
            "each_at_best": round(best("any2seq") / best("CTranslate2"), 2)}
        if len(dtypes) > 1:
            ratios[f"beam{beam}"]["each_at_best_fp32"] = round(best("any2seq", ("fp32",))
                                                               / best("CTranslate2", ("fp32",)), 2)
    batches = f"batches of {args.batch_size}" if args.batch_size else "each engine's default batches"
    times = f" ({n // args.repeat} lines x {args.repeat})" if args.repeat > 1 else ""
    print(f"\n{n} sentences{times}, {batches}, best of {args.rounds} rounds, start-up subtracted; "
          f"{cpu_name()}\n")
    print("| beam | system | workers | dtype | seconds | sent/s | lines equal to any2seq x1 fp32 | BLEU |\n"
          "|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['beam']} | {r['system']} | {r['workers']} | {r['dtype']} | {r['seconds']} | {r['sent_per_s']} | "
              f"{r['same_lines_as_any2seq_x1']}/{n} | {'—' if r['bleu'] is None else r['bleu']} |")
    print("\nany2seq / CTranslate2 (sent/s): " + "; ".join(
        f"beam {k[4:]}: " + ", ".join(f"{what.replace('_', ' ')} {v}x" for what, v in ratio.items())
        for k, ratio in ratios.items()))
    if args.out:
        args.out.write_text(json.dumps({"cpu": cpu_name(), "model": str(args.model), "sentences": n,
                                        "repeat": args.repeat, "batch_size": args.batch_size,
                                        "rounds": args.rounds, "dtypes": dtypes,
                                        "ct2_cpu_compute_types": sorted(ct2_types),
                                        "ref": str(ref_path) if ref_path else None,
                                        "rows": rows,
                                        "ratios": ratios}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"engines.py: {e}", file=sys.stderr)
        sys.exit(2)
