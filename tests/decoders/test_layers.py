"""The layers decoder moves layers of the anchor (the input's last frame) by summed motions: the sum
of displacements, separable moves, a rollout that never re-moves its own output, and its config."""
from __future__ import annotations

import pytest
import torch

from any2seq.config import config_from_dict
from any2seq.decoders.layers import LayersDecoder, accumulate, shift_separable
from any2seq.errors import UserError
from any2seq.interfaces import Memory


def at(length: int, move: int) -> torch.Tensor:
    """A (1, length) distribution certain of a move of ``move`` pixels."""
    dist = torch.zeros(1, length)
    dist[0, length // 2 + move] = 1.0
    return dist


@pytest.mark.parametrize("total,step", [(0, 1), (2, -3), (-1, 0), (3, 3)])
def test_accumulating_a_step_adds_its_move(total, step):
    summed = accumulate(at(7, total), at(7, step))
    assert summed.shape == (1, 13)
    assert torch.equal(summed, at(13, total + step))


def test_accumulated_uncertainty_spreads_and_keeps_its_mass():
    half = torch.tensor([[0.0, 0.5, 0.5]])  # 0 or +1 pixel, as likely
    twice = accumulate(half, half)
    assert torch.allclose(twice, torch.tensor([[0.0, 0.0, 0.25, 0.5, 0.25]]))


@pytest.mark.parametrize("dy,dx", [(1, 0), (0, -2), (-3, 3), (2, 1)])
def test_separable_distributions_move_ink_by_their_offsets(dy, dx):
    image = torch.zeros(1, 12, 12)
    image[0, 4:7, 5:8] = torch.rand(3, 3) + 0.1
    moved = shift_separable(image, at(7, dy), at(7, dx))
    assert torch.allclose(moved, torch.roll(image, (dy, dx), dims=(-2, -1)), atol=1e-6)


def test_ink_moved_off_the_frame_is_gone_not_wrapped():
    image = torch.zeros(1, 8, 8)
    image[0, 6:, :] = 1.0
    assert shift_separable(image, at(5, 2), at(5, 0)).abs().max() < 1e-6


def decoder(context: int = 2) -> LayersDecoder:
    torch.manual_seed(0)
    return LayersDecoder(1, 16, 16, 2, 5, context, d_model=16, layers=1, heads=2, ff=32, dropout=0.0,
                         memory_dim=8, patch=4)


def state(dec: LayersDecoder, batch: int = 2):
    memory = torch.randn(batch, 3, 8, generator=torch.Generator().manual_seed(1))
    return dec.init_state(Memory(memory, torch.ones(batch, 3, dtype=torch.bool)))


def one_layer_moving_down(dec: LayersDecoder) -> None:
    """Every pixel in layer 1, which moves one row down per frame."""
    with torch.no_grad():
        dec.masks.weight.zero_(), dec.masks.bias.fill_(-30.0)
        dec.masks.bias.view(2, 16)[0] = 30.0
        dec.motion.weight.zero_(), dec.motion.bias.fill_(-30.0)
        dec.motion.bias.view(2, 2, 5)[:, 0, 3] = 30.0  # down: +1
        dec.motion.bias.view(2, 2, 5)[:, 1, 2] = 30.0  # right: 0


def test_each_output_is_the_anchor_moved_by_the_motions_so_far_whatever_is_fed_after_it():
    dec = decoder(context=2).eval()
    one_layer_moving_down(dec)
    X = torch.rand(2, 5, 1, 16, 16)
    noise = torch.cat([X[:, :2], torch.rand(2, 3, 1, 16, 16)], 1)  # the anchor is frame 1: all after it differ
    with torch.no_grad():
        out, _ = dec(X, state(dec))
        again, _ = dec(noise, state(dec))
    anchor = X[:, 1]
    for t in range(1, 5):  # output t predicts frame t + 1: the anchor moved t rows down
        expected = torch.roll(anchor, t, dims=-2)
        expected[..., :t, :] = 0.0
        assert torch.allclose(out[:, t], expected, atol=1e-5), t
    assert torch.allclose(out, again, atol=1e-5)


def test_a_rollout_in_steps_continues_the_whole_call_and_stays_in_the_unit_range():
    dec = decoder(context=3).eval()
    X = torch.rand(2, 6, 1, 16, 16)
    with torch.no_grad():
        whole, _ = dec(X, state(dec))
        first, s = dec(X[:, :3], state(dec))
        second, s = dec(X[:, 3:4], s)
        rest, _ = dec(X[:, 4:], s)
    assert whole.min() >= 0 and whole.max() <= 1
    assert torch.allclose(whole, torch.cat([first, second, rest], 1), atol=1e-5)


def test_the_first_call_must_feed_the_anchor():
    dec = decoder(context=3).eval()
    with pytest.raises(ValueError, match="anchor"):
        dec(torch.rand(2, 2, 1, 16, 16), state(dec))


def test_sampled_motions_differ_by_seed_and_repeat_with_it(sampled):
    dec = decoder().eval()
    with torch.no_grad():  # each step: down by 0 or 1 as likely, on each layer
        dec.motion.weight.zero_(), dec.motion.bias.fill_(-30.0)
        dec.motion.bias.view(2, 2, 5)[:, 0, 2:4] = 0.0
        dec.motion.bias.view(2, 2, 5)[:, 1, 2] = 0.0
    X = torch.rand(8, 4, 1, 16, 16)

    def sample(seed):
        return sampled(dec, X, state(dec, 8), seed)

    assert torch.equal(sample(1), sample(1))
    assert not torch.equal(sample(1), sample(2))


def test_the_config_needs_the_input_frame_and_moves_only():
    base = {"task": "video_prediction", "model": {"encoder": {"kind": "video"}}}

    def decoder_config(**keys):
        return config_from_dict({**base, "model": {**base["model"], "decoder": {"kind": "layers", **keys}}})

    cfg = decoder_config(kernels=3, context=2)
    assert (cfg.model.decoder.kernels, cfg.model.decoder.start, cfg.model.decoder.draw) == (3, "last_input", False)
    with pytest.raises(UserError, match="model.decoder.start"):
        decoder_config(start="blank")
    with pytest.raises(UserError, match="model.decoder.draw"):
        decoder_config(draw=True)
