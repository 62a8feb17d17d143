"""The warp decoder moves the fed frame by its kernels: geometry, masks, range, and its config."""
from __future__ import annotations

import pytest
import torch

from any2seq import registry
from any2seq.config import config_from_dict
from any2seq.errors import UserError
from any2seq.decoders.warp import WarpDecoder, shift_frames
from any2seq.interfaces import Memory


def one_hot(k: int, dy: int, dx: int) -> torch.Tensor:
    kernel = torch.zeros(k, k)
    kernel[k // 2 + dy, k // 2 + dx] = 1.0
    return kernel


@pytest.mark.parametrize("dy,dx", [(1, 0), (0, -2), (-3, 3), (2, 1)])
def test_a_one_hot_kernel_moves_ink_by_its_offset(dy, dx):
    frames = torch.zeros(1, 1, 1, 12, 12)
    frames[0, 0, 0, 4:7, 5:8] = torch.rand(3, 3) + 0.1
    moved = shift_frames(frames, one_hot(7, dy, dx)[None, None, None])
    assert torch.equal(moved[:, :, 0], torch.roll(frames, (dy, dx), dims=(-2, -1)))


def test_ink_moved_off_the_frame_is_gone_not_wrapped():
    frames = torch.zeros(1, 1, 1, 8, 8)
    frames[0, 0, 0, :, 7] = 1.0
    moved = shift_frames(frames, one_hot(3, 0, 1)[None, None, None])
    assert moved.sum() == 0


def decoder(kernels=2) -> WarpDecoder:
    torch.manual_seed(0)
    return WarpDecoder(1, 16, 16, kernels, 5, d_model=16, layers=1, heads=2, ff=32, dropout=0.0,
                       memory_dim=8, patch=4)


def state(dec: WarpDecoder, batch: int = 2):
    memory = torch.randn(batch, 3, 8, generator=torch.Generator().manual_seed(1))
    return dec.init_state(Memory(memory, torch.ones(batch, 3, dtype=torch.bool)))


def test_masks_that_pick_the_first_kernel_give_the_fed_frame_moved():
    dec = decoder()
    with torch.no_grad():  # kernel 1: one row down; the masks always choose it
        dec.motion.weight.zero_(), dec.motion.bias.fill_(-30.0)
        dec.motion.bias.view(2, 5, 5)[0, 3, 2] = 30.0
        dec.masks.weight.zero_(), dec.masks.bias.fill_(-30.0)
        dec.masks.bias.view(3, 4, 4)[0] = 30.0
    X = torch.rand(2, 3, 1, 16, 16)
    out, _ = dec(X, state(dec))
    assert torch.allclose(out, torch.roll(X, 1, dims=-2).index_fill(-2, torch.tensor([0]), 0.0), atol=1e-5)


def test_outputs_stay_in_the_unit_range_and_continue_the_cache():
    dec = decoder(kernels=3).eval()
    X = torch.rand(2, 4, 1, 16, 16)
    with torch.no_grad():
        whole, _ = dec(X, state(dec))
        first, s = dec(X[:, :2], state(dec))
        rest, _ = dec(X[:, 2:], s)
    assert whole.min() >= 0 and whole.max() <= 1
    assert torch.allclose(whole, torch.cat([first, rest], 1), atol=1e-5)


def test_the_config_is_registered_and_checked():
    assert registry.decoder("warp").frames
    base = {"task": "video_prediction", "model": {"encoder": {"kind": "video"}}}
    cfg = config_from_dict({**base, "model": {**base["model"], "decoder": {"kind": "warp", "kernels": 3}}})
    assert (cfg.model.decoder.kernels, cfg.model.decoder.patch) == (3, 4)
    with pytest.raises(UserError, match="model.decoder.kernel_size"):
        config_from_dict({**base, "model": {**base["model"], "decoder": {"kind": "warp", "kernel_size": 4}}})


def test_sampled_motions_differ_by_seed_and_repeat_with_it(sampled):
    dec = decoder().eval()
    with torch.no_grad():  # two equally likely motions: one row down or one column right
        dec.motion.weight.zero_(), dec.motion.bias.fill_(-30.0)
        dec.motion.bias.view(2, 5, 5)[:, 3, 2] = 0.0
        dec.motion.bias.view(2, 5, 5)[:, 2, 3] = 0.0
    X = torch.rand(8, 1, 1, 16, 16)

    def sample(seed):
        return sampled(dec, X, state(dec, 8), seed)

    assert torch.equal(sample(1), sample(1))
    assert not torch.equal(sample(1), sample(2))
    assert 0 <= sample(3).min() and sample(3).max() <= 1
