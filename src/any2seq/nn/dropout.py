"""Inverted dropout (Srivastava et al., 2014) with a fast mask on CPU.

PyTorch's CPU ``bernoulli_`` draws one random number per element and costs more than the matrix
products around it; here each 64-bit draw gives eight random bytes, so the mask is about ten
times cheaper. The drop probability is rounded to a multiple of 1/256 (0.1 becomes 0.1016).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def byte_mask(shape: torch.Size, p: float) -> tuple[Tensor, float]:
    """A bool keep-mask with P(drop) = round(256 p) / 256, and the matching rescale factor."""
    threshold = round(p * 256)
    n = shape.numel()
    draws = torch.empty((n + 7) // 8, dtype=torch.int64).random_(-(2 ** 63), 2 ** 63 - 1)
    keep = draws.view(torch.uint8)[:n].view(shape) >= threshold
    return keep, 256.0 / (256 - threshold)


class Dropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        keep, scale = byte_mask(x.shape, self.p)
        return x * (keep.to(x.dtype) * scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"
