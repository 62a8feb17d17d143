"""Interleaved decode timing of the models a benchmark run left in its workdir: any2seq (float32
and bf16) and CTranslate2 on any2seq's export, in turn, for several rounds, so each ratio is
measured at one moment. On a machine whose speed drifts (a shared VM), single passes of a few
seconds each, minutes apart, are not comparable; these ratios are.

    python benchmarks/decode_ab.py [--workdir benchmarks/.work] [--rounds 2] [--sentences 1000]

Run it in the main venv with PYTHONPATH=src after `benchmarks/run.py` trained any2seq,
any2seq-bf16 and exported ct2.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=HERE / ".work")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    import any2seq
    from any2seq.export.ct2 import CT2Translator

    torch.set_num_threads(args.threads)
    models = args.workdir / "models"
    lines = (args.workdir / "test.de").read_text(encoding="utf-8").splitlines()[: args.sentences]
    lines.sort(key=len, reverse=True)  # longest first, batches of 32, as the benchmark decodes
    systems = {"any2seq fp32": any2seq.load(models / "any2seq"),
               "any2seq bf16": any2seq.load(models / "any2seq-bf16", dtype="bfloat16"),
               "ct2 (any2seq export)": CT2Translator(models / "ct2", threads=args.threads)}

    def decode(name, model, beam, batch):
        if name.startswith("ct2"):
            return model.translate(batch, beam=beam, batch_size=32, length_penalty=1.0)
        return [out for i in range(0, len(batch), 32)
                for out in model.translate(batch[i: i + 32], beam=beam, batch_tokens=10 ** 9, length_penalty=1.0)]

    print("| round | system | greedy sent/s | beam-5 sent/s |\n|---|---|---|---|")
    for r in range(args.rounds):
        for name, model in systems.items():
            rates = []
            for beam in (1, 5):
                decode(name, model, beam, lines[:32])  # warm, as the benchmark does
                start = time.perf_counter()
                decode(name, model, beam, lines)
                rates.append(len(lines) / (time.perf_counter() - start))
            print(f"| {r + 1} | {name} | {rates[0]:.1f} | {rates[1]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
