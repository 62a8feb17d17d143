"""Where a Transformer model's decoding time goes, by wall clock: each part of the step and of the
search timed call by call, as shares of the whole decode. torch.profiler's per-op times inflate
small operations on CPU; these do not.

    PYTHONPATH=src python benchmarks/decode_breakdown.py benchmarks/.work/models/any2seq-bf16 \\
        --dtype bfloat16 [--beam 5] [--sentences 320] [--test benchmarks/.work/test.de]

The longest ``--sentences`` test sentences, in batches of 32, after one untimed batch. Parts:
the encoder, the decoder layers (and within them every linear layer and attention call, the
encoder's included), the output layer, the log-softmax, and beam search's top-k selection,
finished-hypothesis bookkeeping, stopping test and state reordering.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--sentences", type=int, default=320)
    ap.add_argument("--test", type=Path, default=HERE / ".work" / "test.de")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    import any2seq
    from any2seq.nn import attention
    from any2seq.nn.packed import PackedLinear
    from any2seq.search import beam

    torch.set_num_threads(args.threads)
    predictor = any2seq.load(args.model, dtype=args.dtype)
    model = predictor.model
    spent: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - start
        return wrapper

    def step(tokens, state):  # Seq2Seq.step, in its three parts
        x, state = timed("decoder layers", model.decoder.features)(tokens[:, None], state)
        logits = timed("output layer", model.decoder.proj)(x)
        return timed("log-softmax", lambda: logits[:, -1].log_softmax(-1, dtype=torch.float32))(), state

    model.step = step
    model.encode = timed("encoder", model.encode)
    for name, part in (("top-k selection", "select"), ("stopping test", "is_done"),
                       ("state reordering", "reorder_state")):
        setattr(beam, part, timed(name, getattr(beam, part)))
    beam.Finished.add = timed("finished hypotheses", beam.Finished.add)
    linears = "  every linear layer (output layer and encoder too)"
    # load() packs only the layers where packing is faster here (nn/packed.py): time both kinds
    PackedLinear.forward = timed(linears, PackedLinear.forward)
    torch.nn.Linear.forward = timed(linears, torch.nn.Linear.forward)
    attention.attend = timed("  every attention product (encoder too)", attention.attend)

    lines = args.test.read_text(encoding="utf-8").splitlines()
    lines = sorted(lines, key=len, reverse=True)[: args.sentences]

    def decode():
        for i in range(0, len(lines), 32):
            predictor.translate(lines[i: i + 32], beam=args.beam, batch_tokens=10 ** 9, length_penalty=1.0)

    decode()
    spent.clear()
    start = time.perf_counter()
    decode()
    total = time.perf_counter() - start
    print(f"{args.model} {args.dtype} beam {args.beam}: {len(lines)} sentences in {total:.2f} s "
          f"({len(lines) / total:.1f} sent/s)\n\n| part | seconds | share |\n|---|---|---|")
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {seconds:.4f} | {seconds / total:.0%} |")
    rest = total - sum(v for k, v in spent.items() if not k.startswith("  "))
    print(f"| everything else (tokenising, search loop) | {rest:.4f} | {rest / total:.0%} |")


if __name__ == "__main__":
    main()
