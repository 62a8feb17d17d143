"""Decoding speed of two checkouts of any2seq in one process, batch by batch in turn, so that the
drift of a shared machine's speed (±10 % over minutes on the benchmark VM) falls on both alike.

    git worktree add /tmp/base HEAD~1
    PYTHONPATH=src python benchmarks/ab_checkouts.py /tmp/base MODEL_DIR --test benchmarks/.work/test.de \\
        [--dtype bfloat16] [--beam 5] [--sentences 600] [--rounds 4]

"base" is the other checkout (its ``src/any2seq`` is copied to a temporary package
``any2seq_base``); "this" is the any2seq on PYTHONPATH. The test sentences are sorted longest
first and decoded in batches of 32, as the benchmark does; each batch goes to both in turn, the
order alternating. Prints each round's sent/s, this checkout's speed-up over base (per round, and
the median over all batch pairs) and whether the two decoded the same text.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def import_base(checkout: Path, into: Path):
    """The ``any2seq`` package of ``checkout`` imported as ``any2seq_base`` (a renamed copy)."""
    src = checkout / "src" / "any2seq"
    if not (src / "__init__.py").is_file():
        raise SystemExit(f"ab_checkouts: {checkout}: no src/any2seq package there")
    dst = into / "any2seq_base"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    for path in dst.rglob("*.py"):
        path.write_text(re.sub(r"\bany2seq\b(?=[.\s])", "any2seq_base", path.read_text(encoding="utf-8")),
                        encoding="utf-8")
    sys.path.insert(0, str(into))
    import any2seq_base

    return any2seq_base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", type=Path, help="the other checkout (a directory holding src/any2seq)")
    ap.add_argument("model", type=Path)
    ap.add_argument("--test", type=Path, default=HERE / ".work" / "test.de")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--sentences", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    import any2seq

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:  # kept while decoding: base may import modules lazily
        base = import_base(args.base, Path(tmp))
        compare({"base": base.load(args.model, dtype=args.dtype), "this": any2seq.load(args.model, dtype=args.dtype)},
                args)


def compare(systems: dict, args) -> None:
    lines = args.test.read_text(encoding="utf-8").splitlines()[: args.sentences]
    lines.sort(key=len, reverse=True)
    batches = [lines[i: i + 32] for i in range(0, len(lines), 32)]

    def decode(name: str, batch: list[str]) -> tuple[float, list[str]]:
        start = time.perf_counter()
        out = systems[name].translate(batch, beam=args.beam, batch_tokens=10 ** 9, length_penalty=1.0)
        return time.perf_counter() - start, out

    for name in systems:
        decode(name, batches[0])  # warm: oneDNN packs the weights on first use
    texts: dict[str, list[str]] = {"base": [], "this": []}
    pair_ratios = []
    for r in range(args.rounds):
        seconds = {"base": 0.0, "this": 0.0}
        for i, batch in enumerate(batches):
            pair = {}
            for name in (("base", "this") if (i + r) % 2 == 0 else ("this", "base")):
                pair[name], out = decode(name, batch)
                if r == 0:
                    texts[name] += out
            seconds["base"] += pair["base"]
            seconds["this"] += pair["this"]
            pair_ratios.append(pair["base"] / pair["this"])
        print(f"round {r + 1}: base {len(lines) / seconds['base']:.1f} sent/s, this {len(lines) / seconds['this']:.1f}"
              f" sent/s, this / base {seconds['base'] / seconds['this']:.3f}", flush=True)
    quartiles = statistics.quantiles(pair_ratios, n=4) if len(pair_ratios) > 1 else pair_ratios * 3
    digest = {name: hashlib.md5("\n".join(out).encode()).hexdigest()[:8] for name, out in texts.items()}
    print(f"this / base over {len(pair_ratios)} batch pairs: median {statistics.median(pair_ratios):.3f} "
          f"(quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f})")
    same = digest["base"] == digest["this"]
    print(f"outputs: {'identical' if same else 'differ'} (base {digest['base']}, this {digest['this']})")


if __name__ == "__main__":
    main()
