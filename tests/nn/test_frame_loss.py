"""The frame loss's slack forgives where a clip lies, never how it moves."""
from __future__ import annotations

import torch

from any2seq.nn.frame_loss import best_shift_errors, displaced, frame_errors


def clip(corners) -> torch.Tensor:
    """(1, T, 1, 16, 16): a 3x3 random blob at each frame's (y, x) corner."""
    blob = torch.rand(3, 3, generator=torch.Generator().manual_seed(0)) + 0.1
    out = torch.zeros(1, len(corners), 1, 16, 16)
    for t, (y, x) in enumerate(corners):
        out[0, t, 0, y: y + 3, x: x + 3] = blob
    return out


def test_displaced_moves_and_drops_what_leaves():
    frames = clip([(5, 5)])
    assert torch.equal(displaced(frames, 2, -3), torch.roll(frames, (2, -3), dims=(-2, -1)))
    assert displaced(frames, 0, 11).sum() == 0


def test_no_slack_is_the_plain_error():
    pred, tgt = torch.rand(2, 3, 1, 8, 8), torch.rand(2, 3, 1, 8, 8)
    real = torch.ones(2, 3, dtype=torch.bool)
    for kind in ("mse", "l1"):
        assert torch.equal(best_shift_errors(pred, tgt, real, kind, 0), frame_errors(pred, tgt, kind))


def test_a_displaced_clip_costs_nothing_within_the_slack_and_something_beyond():
    pred = clip([(4, 4), (5, 6), (6, 8)])
    tgt = clip([(6, 3), (7, 5), (8, 7)])  # the same motion, starting 2 down and 1 left
    real = torch.ones(1, 3, dtype=torch.bool)
    assert best_shift_errors(pred, tgt, real, "mse", 2).sum() == 0
    assert best_shift_errors(pred, tgt, real, "mse", 1).sum() > 0


def test_one_displacement_for_the_whole_clip_so_wrong_motion_still_costs():
    pred = clip([(4, 4), (4, 6), (4, 8)])  # moving right
    tgt = clip([(4, 4), (6, 4), (8, 4)])  # moving down
    real = torch.ones(1, 3, dtype=torch.bool)
    assert best_shift_errors(pred, tgt, real, "mse", 4).sum() > 0


def test_padding_frames_do_not_choose_the_displacement():
    pred = clip([(4, 4), (9, 9)])
    tgt = clip([(5, 5), (0, 0)])  # frame 2 is padding: only frame 1 decides
    real = torch.tensor([[True, False]])
    assert best_shift_errors(pred, tgt, real, "mse", 1)[0, 0] == 0
