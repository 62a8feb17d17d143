"""Prepacked oneDNN linears (nn/packed.py): same outputs as nn.Linear, same parameters, and a
weight changed after packing is packed again."""
import copy

import pytest
import torch
from torch import nn

from any2seq.nn.packed import PackedLinear, available, pack_linears, packing_pays

pytestmark = pytest.mark.skipif(not available(), reason="this PyTorch has no oneDNN")


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("shape", [(7, 16), (2, 3, 16), (0, 16)])
def test_packed_linear_equals_linear(dtype, tol, shape):
    torch.manual_seed(0)
    linear = nn.Linear(16, 24).to(dtype)
    x = torch.randn(*shape).to(dtype)
    packed = PackedLinear(linear)
    with torch.inference_mode():
        want, got = linear(x), packed(x)
    assert got.shape == want.shape and got.dtype == dtype
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)


def test_only_the_layers_packing_pays_for_are_packed():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8), nn.Linear(8, 16))
    assert pack_linears(model, pays=lambda linear: linear.out_features == 16) == 2
    assert [type(m) for m in model] == [PackedLinear, nn.ReLU, nn.Linear, PackedLinear]


def test_packing_pays_is_a_measured_verdict_per_shape():
    linear = nn.Linear(64, 256)
    verdict = packing_pays(linear, rows=32)
    assert isinstance(verdict, bool)
    assert packing_pays(nn.Linear(64, 256), rows=32) is verdict  # the same shape is measured once


def test_pack_linears_keeps_parameters_ties_and_gradients():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8, bias=False))
    model[2].weight = model[0].weight  # tied
    names = [name for name, _ in model.named_parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert pack_linears(model) == 2
    assert isinstance(model[0], PackedLinear) and isinstance(model[0], nn.Linear)
    assert [name for name, _ in model.named_parameters()] == names and model[2].weight is model[0].weight
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    x = torch.randn(4, 8)
    model(x).sum().backward()  # with a gradient: the plain F.linear path
    assert model[0].weight.grad is not None and model[0].bias.grad is not None
    model.requires_grad_(False)  # frozen weights, a gradient for the input only
    x.requires_grad_(True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_a_weight_changed_after_packing_is_packed_again():
    torch.manual_seed(2)
    linear = nn.Linear(8, 4)
    packed, x = PackedLinear(linear), torch.randn(3, 8)
    with torch.no_grad():
        before = packed(x)
        linear.weight.mul_(2)  # an optimiser step, in place
        linear.bias.zero_()
        after = x @ linear.weight.T
        torch.testing.assert_close(packed(x), after)
        assert not torch.equal(before, after)
        packed.to(torch.bfloat16)  # a new dtype: packed again too
        torch.testing.assert_close(packed(x.bfloat16()).float(), after, atol=0.1, rtol=0.05)


def test_a_used_packed_linear_can_be_deep_copied():
    packed, x = PackedLinear(nn.Linear(4, 4)), torch.randn(2, 4)
    with torch.no_grad():
        want = packed(x)
        torch.testing.assert_close(copy.deepcopy(packed)(x), want)


def test_a_linear_made_under_inference_mode_is_packed():
    """``with torch.inference_mode(): any2seq.load(...)`` makes inference-tensor weights, which
    keep no version counter."""
    with torch.inference_mode():
        linear = nn.Linear(4, 3)
        packed, x = PackedLinear(linear), torch.randn(2, 4)
        torch.testing.assert_close(packed(x), linear(x))


def test_a_dtype_the_cpu_cannot_prepack_goes_through_the_plain_linear(monkeypatch):
    """AVX2-only CPUs (AMD Zen 3) have oneDNN's float32 prepacking but not its bfloat16 one, which
    raises instead of falling back: decoding and the precision probe must not depend on it."""
    from any2seq import precision
    from any2seq.nn import packed as packed_module

    monkeypatch.setattr(packed_module, "available", lambda dtype=torch.float32: dtype == torch.float32)
    torch.manual_seed(3)
    linear = nn.Linear(16, 8).to(torch.bfloat16)
    x = torch.randn(5, 16).to(torch.bfloat16)
    with torch.inference_mode():
        torch.testing.assert_close(PackedLinear(linear)(x), linear(x))
    assert precision.time_products([(16, 8)], 4, torch.bfloat16, train=False, repeats=1) > 0
