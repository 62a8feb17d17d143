"""The fast CPU dropout: right rate, unbiased, repeatable under a seed, identity in eval mode."""
import torch

from any2seq.nn.dropout import Dropout, byte_mask


def test_drop_rate_and_scale_match_the_rounded_probability():
    keep, scale = byte_mask(torch.Size([400_000]), 0.1)
    p = round(0.1 * 256) / 256
    assert abs((~keep).float().mean().item() - p) < 0.003
    assert scale == 1 / (1 - p)


def test_every_byte_position_is_uniform():
    # a 64-bit draw gives 8 bytes; each must drop at the same rate (the top byte is the risky one)
    keep, _ = byte_mask(torch.Size([80_000, 8]), 0.25)
    rates = (~keep).float().mean(0)
    assert torch.allclose(rates, torch.full((8,), 0.25), atol=0.01), rates


def test_expectation_is_preserved_and_gradients_flow_through_kept_units():
    drop = Dropout(0.3).train()
    x = torch.ones(200_000, requires_grad=True)
    y = drop(x)
    assert abs(y.mean().item() - 1.0) < 0.01
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)


def test_same_seed_same_mask_and_eval_is_identity():
    drop = Dropout(0.2).train()
    x = torch.randn(64, 32)
    torch.manual_seed(3)
    a = drop(x)
    torch.manual_seed(3)
    assert torch.equal(a, drop(x))
    assert torch.equal(drop.eval()(x), x)


def test_bf16_inputs_keep_their_dtype():
    assert Dropout(0.1).train()(torch.randn(10, 10, dtype=torch.bfloat16)).dtype == torch.bfloat16
