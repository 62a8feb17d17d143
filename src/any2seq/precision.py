"""``precision: auto``: fp32 or bf16, chosen by timing the model's own matrix products on this machine.

Why measure: bf16 trained the demo model much faster than fp32 on one CPU with AVX512-BF16 and
much slower on another with AVX512-BF16 but no AMX (the figures: benchmarks/README.md, "Figures
behind the code"). No flag or instruction-set test predicts that, so a setting that is right on one
machine halves the speed on the next. The probe times the
products the model will run (its linear layers' shapes, with the rows a training batch or a decoding
step gives them) in both precisions and keeps the faster. It takes well under a second, and the
verdict is cached per CPU model, torch version, thread count and shape class in the user's cache
directory (``~/.cache/any2seq/precision.json``; delete it to measure again), so later runs on the
same machine reuse it; a close call (within ``DECISIVE``) is not cached, since load on the machine
or noise may have decided it, and it costs little either way.

``ANY2SEQ_PRECISION=fp32`` (or ``bf16``) pins what ``auto`` picks without probing: reproducible test
suites and scripted comparisons.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UserError
from .fileio import user_cache

Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS = ("auto", "fp32", "bf16")
DECODE_PRECISIONS = (*PRECISIONS, "int8")  # int8: decoding only, opt-in (nn/int8.py)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.float32}  # int8: its linears' weights only
ALIASES = {"float32": "fp32", "bfloat16": "bf16"}  # the API's older names for the same choices
ENV = "ANY2SEQ_PRECISION"
TRAIN_ROWS = 512  # rows of a training product: a batch's tokens, capped (the speed ratio has settled by then)
DECODE_ROWS = 64  # rows of a decoding step: a few sentences times the beam
DECISIVE = 1.15  # a verdict is cached only when one precision is at least this much faster


@dataclass(frozen=True)
class Choice:
    """What ``auto`` (or a forced setting) chose, and the figures behind it."""

    precision: Precision
    how: str  # "forced", "probe", "cached", "env", or why no probe ran ("frames output", "cuda")
    fp32_gflops: float | None = None
    bf16_gflops: float | None = None

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]

    def record(self) -> dict:
        """The JSON kept in metrics.jsonl and the model card."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def measured(self) -> bool:
        return self.fp32_gflops is not None

    def line(self, what: str) -> str:
        """One line for the log: the choice, and the figures behind it where ``auto`` measured."""
        if not self.measured:
            return f"any2seq: {what} precision {self.precision} ({self.how})"
        return (f"any2seq: {what} precision {self.precision} (auto, {self.how}: fp32 {self.fp32_gflops:.0f}, "
                f"bf16 {self.bf16_gflops:.0f} GFLOP/s on the model's products, {cpu_name()})")


def normalize(precision: str, key: str = "precision", allowed: Sequence[str] = PRECISIONS) -> str:
    """One of ``allowed`` (``float32``/``bfloat16`` accepted for fp32/bf16), else a one-line error."""
    value = ALIASES.get(precision, precision)
    if value not in allowed:
        raise UserError(f"{key}: {precision!r} is not one of {', '.join(allowed)}")
    return value


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    """(in, out) of every linear product the model runs, one entry per layer (repeats weigh more)."""
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    return shapes or [(256, 256)]  # a model without linear layers (pure RNN): time a typical product


def choose(precision: str, shapes: Sequence[tuple[int, int]], rows: int, device: torch.device | str,
           train: bool, probe: Callable | None = None) -> Choice:
    """Resolve ``precision`` for a model with these linear ``shapes`` run on ``rows`` rows at a time.

    ``probe(shapes, rows, dtype, train) -> seconds`` is injectable for tests; it defaults to timing them.
    """
    precision = normalize(precision)
    if precision != "auto":
        return Choice(precision, "forced")
    pinned = os.environ.get(ENV, "")
    if pinned:
        return Choice(normalize(pinned, f"environment variable {ENV}"), "env")
    device = torch.device(device)
    if device.type == "cuda":  # tensor cores: bf16 wherever the GPU has it, no contest
        return Choice("bf16" if torch.cuda.is_bf16_supported() else "fp32", "cuda")
    if device.type != "cpu":
        return Choice("fp32", f"no probe on {device.type}")
    key = _cache_key(shapes, rows, train)
    cached = _read_cache().get(key)
    if probe is None and cached:
        return Choice(cached["precision"], "cached", cached["fp32_gflops"], cached["bf16_gflops"])
    probe = probe or time_products
    flops = sum(2 * rows * k * n for k, n in shapes) * (3 if train else 1)
    # Two rounds in opposite orders, each precision's best kept: a burst of load from another
    # process would have to slow every timing of one precision and none of the other to flip the
    # verdict, and a verdict the rounds disagree on is not cached.
    rounds = [{p: probe(shapes, rows, DTYPES[p], train) for p in order} for order in (("fp32", "bf16"),
                                                                                       ("bf16", "fp32"))]
    gflops = {p: flops / max(min(r[p] for r in rounds), 1e-9) / 1e9 for p in ("fp32", "bf16")}
    winner = "bf16" if gflops["bf16"] > gflops["fp32"] else "fp32"
    choice = Choice(winner, "probe", float(f"{gflops['fp32']:.3g}"), float(f"{gflops['bf16']:.3g}"))
    agreed = all(min(r, key=r.get) == winner for r in rounds)
    if agreed and max(gflops.values()) >= DECISIVE * min(gflops.values()):
        _write_cache(key, choice)  # a close or contested call is measured again next time: noise or load
    return choice


SCOUT_ROWS, SCOUT_BUDGET_S = 16, 2.0


def time_products(shapes: Sequence[tuple[int, int]], rows: int, dtype: torch.dtype, train: bool,
                  repeats: int = 3) -> float:
    """Seconds for one pass over the products: forward, and for training the two backward ones
    (grad input = grad out @ W, grad weight = grad out^T @ x). The fastest of ``repeats`` passes,
    after one untimed pass that builds oneDNN's kernels for these shapes.

    A scout pass on a few rows comes first: a CPU without native bf16 (AVX2 only) multiplies bf16
    in a reference path two orders of magnitude slower than float32, where the full probe would
    take minutes; when the scout says a pass would exceed a couple of seconds, its estimate is
    the answer (the verdict is not in doubt then)."""
    if rows > SCOUT_ROWS:
        estimate = _pass_seconds(shapes, SCOUT_ROWS, dtype, train, repeats=1) * rows / SCOUT_ROWS
        if estimate > SCOUT_BUDGET_S:
            return estimate
    return _pass_seconds(shapes, rows, dtype, train, repeats)


def _pass_seconds(shapes: Sequence[tuple[int, int]], rows: int, dtype: torch.dtype, train: bool,
                  repeats: int) -> float:
    from .nn import packed

    gen = torch.Generator().manual_seed(0)
    unique = sorted(set(shapes))
    counts = {s: shapes.count(s) for s in unique}
    tensors = {(k, n): (torch.randn(rows, k, generator=gen).to(dtype), torch.randn(n, k, generator=gen).to(dtype),
                        torch.randn(rows, n, generator=gen).to(dtype)) for k, n in unique}
    # Decoding multiplies by oneDNN-prepacked weights where it can (nn/packed.py): time those.
    prepacked = not train and packed.available(dtype)
    weights = {s: torch.ops.mkldnn._reorder_linear_weight(w) if prepacked else w for s, (_, w, _) in tensors.items()}

    def one_pass() -> float:
        total = 0.0
        for shape, (x, w, g) in tensors.items():
            start = time.perf_counter()
            if prepacked:
                torch.ops.mkldnn._linear_pointwise(x, weights[shape], None, "none", [], "")
            else:
                F.linear(x, w)
            if train:
                g @ w
                g.t() @ x
            total += (time.perf_counter() - start) * counts[shape]
        return total

    with torch.no_grad():
        one_pass()
        return min(one_pass() for _ in range(repeats))


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU as a reader of a figure needs it. The model name alone can hide two CPUs ("AMD EPYC"
    is a Zen 3 with AVX2 only and a Zen 5 with AVX512-BF16), so on x86 Linux the family and model
    follow it, with torch's instruction-set level and the bf16 units that decide ``auto``.
    ``cpuinfo``: the text of /proc/cpuinfo (read when not given)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            break  # the first processor's block ends at a blank line
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" not in fields:
        return name
    flags = set(fields.get("flags", "").split())
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return (f"{name} (family {fields['cpu family']} model {fields.get('model', '?')}, "
            f"{', '.join([torch.backends.cpu.get_cpu_capability(), *bf16])})")


def _cache_key(shapes, rows: int, train: bool) -> str:
    """The machine and the shape class: a verdict holds for the same CPU, torch, threads and
    product sizes (widths rounded to powers of two: a model with d 256 and one with d 320 agree)."""
    def p2(x: int) -> int:
        return 1 << max(0, int(x) - 1).bit_length()
    widths = sorted({(p2(k), p2(n)) for k, n in shapes})
    return json.dumps([cpu_name(), torch.backends.cpu.get_cpu_capability(), torch.__version__,
                       torch.get_num_threads(), "train" if train else "decode",
                       p2(rows), widths])


def _cache_path() -> Path:
    return user_cache() / "precision.json"


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(key: str, choice: Choice) -> None:
    """Best effort: a read-only home or a full disk costs a probe next time, nothing else."""
    from .fileio import atomic_write

    data = _read_cache()
    data[key] = {"precision": choice.precision, "fp32_gflops": choice.fp32_gflops, "bf16_gflops": choice.bf16_gflops}
    try:
        _cache_path().parent.mkdir(parents=True, exist_ok=True)
        atomic_write(_cache_path(), json.dumps(data, indent=1))
    except OSError as e:
        print(f"any2seq: could not cache the precision probe in {_cache_path()} ({e.strerror or e})", file=sys.stderr)
