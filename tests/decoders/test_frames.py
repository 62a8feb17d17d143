"""The frames decoder: frame-causal, incremental decoding equals the full pass, batch rows are
independent, and gradients reach every parameter."""
import pytest
import torch

from any2seq import Decoder
from any2seq.decoders.frames import FramesDecoder, frame_causal_mask
from any2seq.interfaces import Memory, lengths_to_mask, map_state, reorder_state

ATOL = RTOL = 1e-5
B, T, C, H, W, P = 3, 4, 2, 8, 12, 4  # non-square frames, two channels: catches a swapped axis
MEMORY_LENGTHS = [5, 2, 4]  # padding in the memory of every row but the first


def make_decoder(memory_dim: int = 6, dropout: float = 0.1) -> FramesDecoder:
    torch.manual_seed(0)
    return FramesDecoder(C, H, W, d_model=16, layers=2, heads=2, ff=32, dropout=dropout,
                         memory_dim=memory_dim, patch=P).eval()


def inputs(memory_dim: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(MEMORY_LENGTHS)
    memory = Memory(torch.randn(B, max(MEMORY_LENGTHS), memory_dim, generator=g), lengths_to_mask(lengths))
    frames = torch.rand(B, T, C, H, W, generator=g)  # (B, T, C, H, W)
    return memory, frames


def decode_in_chunks(decoder, memory, frames, sizes):
    state = decoder.init_state(memory)
    outputs, start = [], 0
    for size in sizes:
        out, state = decoder(frames[:, start: start + size], state)
        outputs.append(out)
        start += size
    assert start == frames.size(1)
    return torch.cat(outputs, 1), state


def leaves(state) -> list[torch.Tensor]:
    found = []
    map_state(lambda t: found.append(t) or t, state)
    return found


def test_mask_lets_a_tile_see_its_own_frame_and_the_frames_before():
    mask = frame_causal_mask(6, 0, 2, "cpu")  # 3 frames of 2 tiles
    assert mask.tolist()[2] == [True, True, True, True, False, False]
    assert frame_causal_mask(2, 4, 2, "cpu").all()  # the third frame, fed alone after two cached


@torch.no_grad()
def test_shapes_and_range():
    decoder = make_decoder()
    assert isinstance(decoder, Decoder)
    memory, frames = inputs()
    out, state = decoder(frames, decoder.init_state(memory))
    assert out.shape == (B, T, C, H, W)
    assert 0 <= out.min() and out.max() <= 1
    assert state["self"][0].k.shape == (B, 2, T * (H // P) * (W // P), 8)


@torch.no_grad()
def test_incremental_decoding_equals_the_full_pass():
    decoder = make_decoder()
    memory, frames = inputs()
    full, full_state = decode_in_chunks(decoder, memory, frames, [T])
    for sizes in ([1] * T, [2, 1, 1], [1, 3]):
        out, state = decode_in_chunks(decoder, memory, frames, sizes)
        torch.testing.assert_close(out, full, atol=ATOL, rtol=RTOL)
        for a, b in zip(leaves(state), leaves(full_state), strict=True):
            torch.testing.assert_close(a, b, atol=ATOL, rtol=RTOL)


@torch.no_grad()
def test_a_frame_never_sees_later_frames():
    decoder = make_decoder()
    memory, frames = inputs()
    changed = frames.clone()
    changed[:, 2:] = torch.rand_like(changed[:, 2:])
    a, _ = decoder(frames, decoder.init_state(memory))
    b, _ = decoder(changed, decoder.init_state(memory))
    torch.testing.assert_close(a[:, :2], b[:, :2], atol=ATOL, rtol=RTOL)
    assert not torch.allclose(a[:, 2:], b[:, 2:])


@torch.no_grad()
def test_one_row_alone_equals_that_row_of_the_batch_and_reorder_state_works():
    decoder = make_decoder()
    memory, frames = inputs()
    full, _ = decode_in_chunks(decoder, memory, frames, [2, 2])
    for row in range(B):
        n = MEMORY_LENGTHS[row]  # alone, the row has no padding at all
        alone = Memory(memory.states[row: row + 1, :n], memory.mask[row: row + 1, :n])
        out, _ = decode_in_chunks(decoder, alone, frames[row: row + 1], [2, 2])
        torch.testing.assert_close(out[0], full[row], atol=ATOL, rtol=RTOL)
    # a reordered state continues each row exactly as the original did
    state = decoder.init_state(memory)
    _, state = decoder(frames[:, :2], state)
    index = torch.tensor([2, 0, 0])
    out, _ = decoder(frames[index, 2:], reorder_state(state, index))
    torch.testing.assert_close(out, full[index, 2:], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("memory_dim", [1, 6, 33])
def test_gradients_reach_every_parameter_for_any_memory_size(memory_dim):
    decoder = make_decoder(memory_dim).train()
    memory, frames = inputs(memory_dim)
    memory = Memory(memory.states.requires_grad_(), memory.mask)
    out, _ = decoder(frames, decoder.init_state(memory))
    ((out - frames) ** 2).mean().backward()
    for name, p in decoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert memory.states.grad.abs().sum() > 0


def test_plain_tensor_memory_is_accepted():
    decoder = make_decoder()
    _, frames = inputs()
    with torch.no_grad():
        out, _ = decoder(frames, decoder.init_state(torch.randn(B, 3, 6)))
    assert out.shape == frames.shape


@pytest.mark.parametrize("height, width, patch", [(8, 10, 4), (9, 12, 4), (8, 8, 0)])
def test_a_frame_size_that_is_not_a_multiple_of_the_patch_is_refused(height, width, patch):
    with pytest.raises(ValueError, match="patch"):
        FramesDecoder(1, height, width, 16, 1, 2, 32, 0.0, 8, patch)
