"""Frame regression losses: per-frame error, optionally forgiving where the whole clip lies.

Why the slack: when the source does not determine where the picture is (a text says "digit 7 moving
left", not where it starts), the error against the one true clip punishes every position but that
one, and the prediction that minimises it is the mean over positions: a smudge. Scoring each clip at
the displacement of its target that fits best (up to ``slack`` pixels on each axis, one displacement
for all of the clip's frames: the motion still has to be right) is a winner-takes-all loss over
translations (Rupprecht et al., 2017, "Learning in an Uncertain World").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def frame_errors(pred: Tensor, tgt: Tensor, kind: str) -> Tensor:
    """(B, T, C, H, W) twice -> (B, T): mean squared (``mse``) or absolute (``l1``) error per frame."""
    diff = (pred.float() - tgt.float()).flatten(2)
    return diff.square().mean(-1) if kind == "mse" else diff.abs().mean(-1)


def displaced(frames: Tensor, dy: int, dx: int) -> Tensor:
    """(B, T, C, H, W) moved by (dy, dx) pixels (down, right); what leaves the frame is gone, zeros come in."""
    H, W = frames.shape[-2:]
    padded = F.pad(frames, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    return padded[..., max(-dy, 0): max(-dy, 0) + H, max(-dx, 0): max(-dx, 0) + W]


def best_shift_errors(pred: Tensor, tgt: Tensor, real: Tensor, kind: str, slack: int) -> Tensor:
    """(B, T) per-frame errors against each clip's target displaced by the (dy, dx), |dy|, |dx| <=
    ``slack``, whose summed error over the clip's ``real`` (B, T) frames is least; slack 0: no shift."""
    if slack == 0:
        return frame_errors(pred, tgt, kind)
    shifts = [(dy, dx) for dy in range(-slack, slack + 1) for dx in range(-slack, slack + 1)]
    errors = torch.stack([frame_errors(pred, displaced(tgt, dy, dx), kind) for dy, dx in shifts])  # (S, B, T)
    best = errors.masked_fill(~real, 0.0).sum(-1).argmin(0)  # (B,)
    return errors[best, torch.arange(errors.size(1), device=errors.device)]
