"""The output layer and the label-smoothed cross-entropy fused: the (N, V) logits are never stored.

``F.cross_entropy(hidden @ weight.T, ...)`` keeps the logits, a float32 copy of them (under bf16
autocast), the log-softmax and its gradient: four (N, V) tensors and as many passes over memory
per step. For a 4k-token batch and an 8k vocabulary that was about a third of a bf16 CPU training
step's time outside the matrix products. Here the rows go through in chunks: each chunk's logits, loss and
gradient (softmax minus the smoothed target) are computed while they are in cache, and the
gradients for ``hidden`` and ``weight`` are ready when the forward pass ends (the loss is a
scalar, so backward only scales them) -- the "fused linear cross-entropy" of Liger-Kernel and
Apple's Cut Cross-Entropy (Wijmans et al., 2024), done with plain torch ops.
"""
from __future__ import annotations

import torch
from torch import Tensor

CHUNK_ELEMENTS = 1 << 22  # logits per chunk (16 MiB in float32): 512 rows of an 8k vocabulary


def linear_cross_entropy(hidden: Tensor, weight: Tensor, target: Tensor, ignore_index: int = -100,
                         label_smoothing: float = 0.0, chunk: int = 0) -> Tensor:
    """Summed cross-entropy of ``hidden @ weight.T`` against ``target``; equals
    ``F.cross_entropy(hidden @ weight.T, target, ignore_index=..., label_smoothing=..., reduction="sum")``.

    hidden (N, D), weight (V, D), target (N,). Under autocast the products run in its dtype and
    the softmax in float32, as autocast runs ``cross_entropy``. ``chunk``: rows at a time (default:
    ``CHUNK_ELEMENTS`` logits' worth, the fastest measured: benchmarks/README.md, "Figures behind the code").
    """
    chunk = chunk or max(1, CHUNK_ELEMENTS // weight.size(0))
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(hidden, weight, target, ignore_index, label_smoothing, chunk)
    return _chunks(hidden, weight, target, ignore_index, label_smoothing, chunk, with_grad=False)[0]


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, target, ignore_index, label_smoothing, chunk):
        loss, grad_hidden, grad_weight = _chunks(hidden, weight, target, ignore_index, label_smoothing, chunk,
                                                 with_grad=True)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.dtypes = hidden.dtype, weight.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        grad_hidden, grad_weight = ctx.saved_tensors
        return ((grad_hidden * grad_loss).to(ctx.dtypes[0]), (grad_weight * grad_loss).to(ctx.dtypes[1]),
                None, None, None, None)


def _chunks(hidden: Tensor, weight: Tensor, target: Tensor, ignore_index: int, eps: float, chunk: int,
            with_grad: bool):
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    with torch.autocast(device, enabled=False):
        h, w = hidden.to(dtype), weight.to(dtype)
        (N, V), f32 = (h.size(0), w.size(0)), torch.float32
        keep = target != ignore_index
        safe = torch.where(keep, target, 0)[:, None]
        loss = torch.zeros((), dtype=f32, device=hidden.device)
        # Buffers reused by every chunk: fresh (n, V) tensors each time cost a third more on CPU.
        logits = h.new_empty(min(chunk, N), V)
        probs = logits if dtype == f32 else logits.new_empty(logits.shape, dtype=f32)
        grad_h = torch.empty_like(h) if with_grad else None
        grad_w = torch.zeros(w.shape, dtype=f32, device=hidden.device) if with_grad else None
        part = torch.empty_like(w) if with_grad and dtype != f32 else None
        for start in range(0, N, chunk):
            rows = slice(start, start + chunk)
            hc = h[rows]
            lg, p = logits[: hc.size(0)], probs[: hc.size(0)]
            torch.mm(hc, w.T, out=lg)
            if p is not lg:
                p.copy_(lg)
            if p.device.type == "cpu":  # in place: row by row, checked against F.cross_entropy in the tests
                torch.log_softmax(p, -1, out=p)
            else:  # other devices' kernels are not known to allow out aliasing the input
                p.copy_(p.log_softmax(-1))
            nll = -p.gather(1, safe[rows]).squeeze(1)
            if eps > 0:  # the smoothed target puts eps / V on every class
                nll = (1 - eps) * nll - eps * p.mean(-1)
            loss += nll.masked_fill(~keep[rows], 0.0).sum()
            if not with_grad:
                continue
            p.exp_()  # d loss / d logits = softmax - smoothed one-hot target; 0 for ignored rows
            if eps > 0:
                p.sub_(eps / V)
            p.scatter_add_(1, safe[rows], p.new_full(safe[rows].shape, eps - 1.0))
            p.mul_(keep[rows, None])
            if p is not lg:
                lg.copy_(p)
            torch.mm(lg, w, out=grad_h[rows])
            if part is None:
                grad_w.addmm_(lg.T, hc)
            else:
                grad_w += torch.mm(lg.T, hc, out=part)
    return loss, grad_h, grad_w
