"""Linear layers with oneDNN-prepacked weights, for decoding on CPU.

A decoding step multiplies a few dozen to a few hundred rows by each weight matrix. At that size
PyTorch's plain CPU matmul spends much of its time preparing the weight's layout on every call;
oneDNN can prepare it once (the same prepacking ``torch.compile`` does when it freezes a CPU
model); what it saved where it was measured is in benchmarks/README.md, "Figures behind the code".

``pack_linears(model)`` swaps every ``nn.Linear`` for a ``PackedLinear`` that keeps the original
``weight`` and ``bias`` (state dicts, tied weights and the fused loss see them unchanged) and
multiplies by the packed copy whenever no gradient is needed. It repacks if the weight has changed
since (an optimiser step bumps its version), so training a loaded model stays correct. Whether
packing pays depends on the CPU and the shape, so ``any2seq.load`` packs only the layers that
``packing_pays`` times faster packed on this machine.
"""
from __future__ import annotations

import functools
import threading
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@functools.lru_cache(maxsize=None)
def available(dtype: torch.dtype = torch.float32) -> bool:
    """Whether this PyTorch build and this CPU have oneDNN's prepacked linear for ``dtype``: CPU
    builds do for float32, but bfloat16 needs AVX512 (or AVX-NE-CONVERT), which an AVX2-only CPU
    such as AMD's Zen 3 lacks."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        w = torch.ops.mkldnn._reorder_linear_weight(torch.ones(2, 2, dtype=dtype))
        torch.ops.mkldnn._linear_pointwise(torch.ones(1, 2, dtype=dtype), w, None, "none", [], "")
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return True


_PACKING = threading.Lock()


class PackedLinear(nn.Linear):
    """An ``nn.Linear`` whose forward goes through a oneDNN-prepacked copy of the weight when no
    gradient is needed (and through ``F.linear`` otherwise)."""

    def __init__(self, linear: nn.Linear):
        nn.Module.__init__(self)  # not nn.Linear's: it would make new parameters
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias  # the same Parameters: ties and state dicts hold
        self._packed: Tensor | None = None
        self._key: tuple = ()

    def packed(self) -> Tensor:
        w = self.weight
        version = None if w.is_inference() else w._version  # inference tensors (made under inference_mode) have none
        key = (w.data_ptr(), version, w.dtype, w.device)
        if self._packed is None or key != self._key:  # (re)pack: first use, new dtype, or trained since
            with _PACKING:  # decoding workers share the model: one packs, the others wait for it
                if self._packed is None or key != self._key:
                    with torch.no_grad():
                        packed = torch.ops.mkldnn._reorder_linear_weight(w.detach())
                    self._packed, self._key = packed, key
        return self._packed

    def __getstate__(self):  # copies (deepcopy) pack again on first use: oneDNN's layout has no storage to copy
        return {**self.__dict__, "_packed": None, "_key": ()}

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        needs_grad = torch.is_grad_enabled() and (w.requires_grad or x.requires_grad)
        if needs_grad or x.device.type != "cpu" or x.dtype != w.dtype or not available(w.dtype):
            return F.linear(x, w, self.bias)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed(), self.bias, "none", [], "")


def pack_linears(model: nn.Module, pays: Callable[[nn.Linear], bool] | None = None) -> int:
    """Swap every ``nn.Linear`` in ``model`` for a ``PackedLinear`` (in place), or only those for which
    ``pays(linear)`` is true (``packing_pays`` measures it); how many were swapped. Nothing changes
    where this PyTorch has no oneDNN."""
    if not available():
        return 0
    swapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear and (pays is None or pays(child)):
                setattr(module, name, PackedLinear(child))
                swapped += 1
    return swapped


PAYS = 0.95  # pack only where it is clearly faster: the plain product needs no second copy of the weight


def packing_pays(linear: nn.Linear, rows: int) -> bool:
    """Whether ``linear``'s shape multiplies faster prepacked than through ``F.linear`` on this CPU, at
    ``rows`` rows. Where it pays depends on the CPU: on an AVX2-only AMD Zen 3 the packed product
    was the slower one for a decoder's small layers and the faster for a large output layer, so it
    is timed, not assumed."""
    w = linear.weight
    if w.device.type != "cpu" or not available(w.dtype):
        return False
    return _packing_pays(linear.in_features, linear.out_features, w.dtype, rows, torch.get_num_threads())


@functools.lru_cache(maxsize=None)
def _packing_pays(k: int, n: int, dtype: torch.dtype, rows: int, threads: int) -> bool:
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(rows, k, generator=gen).to(dtype), torch.randn(n, k, generator=gen).to(dtype)
    packed_w = torch.ops.mkldnn._reorder_linear_weight(w)
    ways = {"plain": lambda: F.linear(x, w),
            "packed": lambda: torch.ops.mkldnn._linear_pointwise(x, packed_w, None, "none", [], "")}
    best = dict.fromkeys(ways, float("inf"))
    with torch.no_grad():
        for way in ways.values():  # untimed: oneDNN builds its kernel for the shape
            way()
        for _ in range(3):  # interleaved rounds: a burst of load slows both ways, not one
            for name, way in ways.items():
                start = time.perf_counter()
                for _ in range(10):
                    way()
                best[name] = min(best[name], time.perf_counter() - start)
    return best["packed"] < PAYS * best["plain"]
