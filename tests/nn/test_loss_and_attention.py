"""The fused output layer + cross-entropy, and the explicit bf16 attention path, against the
plain torch formulas they replace."""
import pytest
import torch
import torch.nn.functional as F

from any2seq.nn.attention import CrossAttention, SelfAttention, attend, causal_mask
from any2seq.nn.kv_cache import KVCache
from any2seq.nn.loss import linear_cross_entropy


def _case(seed=0, N=300, D=16, V=97):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(N, D, generator=g, requires_grad=True)
    weight = (0.3 * torch.randn(V, D, generator=g)).requires_grad_()
    target = torch.randint(0, V, (N,), generator=g)
    target[::5] = 0  # padding, ignored
    return hidden, weight, target


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("chunk", [0, 7, 64, 1000])
def test_fused_loss_and_gradients_equal_cross_entropy(smoothing, chunk):
    hidden, weight, target = _case()
    ref = F.cross_entropy(hidden @ weight.T, target, ignore_index=0, label_smoothing=smoothing, reduction="sum")
    ref_grads = torch.autograd.grad(0.37 * ref, [hidden, weight])
    loss = linear_cross_entropy(hidden, weight, target, 0, smoothing, chunk=chunk)
    grads = torch.autograd.grad(0.37 * loss, [hidden, weight])  # backward scales by the upstream gradient
    torch.testing.assert_close(loss, ref)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


def test_fused_loss_without_grad_and_all_ignored():
    hidden, weight, target = _case(1)
    with torch.no_grad():
        ref = F.cross_entropy(hidden @ weight.T, target, ignore_index=0, reduction="sum")
        torch.testing.assert_close(linear_cross_entropy(hidden, weight, target, 0), ref)
    loss = linear_cross_entropy(hidden, weight, torch.zeros_like(target), 0, 0.1)
    loss.backward()
    assert loss.item() == 0 and hidden.grad.abs().sum() == 0 and weight.grad.abs().sum() == 0


def test_fused_loss_under_bf16_autocast_is_as_close_as_autocast_cross_entropy():
    hidden, weight, target = _case(2, N=512, D=64, V=1000)
    exact = F.cross_entropy(hidden @ weight.T, target, ignore_index=0, label_smoothing=0.1, reduction="sum")
    exact_grad = torch.autograd.grad(exact, weight)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = F.cross_entropy((hidden @ weight.T).float(), target, ignore_index=0, label_smoothing=0.1,
                                reduction="sum")
        fused = linear_cross_entropy(hidden, weight, target, 0, 0.1)
    plain_grad, fused_grad = (torch.autograd.grad(x, weight)[0] for x in (plain, fused))
    assert fused.dtype == torch.float32 and fused_grad.dtype == torch.float32
    rel = lambda g: ((g - exact_grad).norm() / exact_grad.norm()).item()  # noqa: E731
    assert abs(fused.item() - exact.item()) / exact.item() < 1e-2
    assert rel(fused_grad) < 2 * rel(plain_grad) + 1e-3


@pytest.mark.parametrize("causal", [False, True])
def test_bf16_explicit_attention_matches_the_fused_kernel(causal):
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(3, 2, 6, 8, generator=g) for _ in range(3))
    mask = None if causal else torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] + [0] * 5], dtype=torch.bool)
    mask4 = None if mask is None else mask[:, None, None, :]
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask4, is_causal=causal)
    got = attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask4, causal)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("causal", [False, True])
def test_explicit_attention_without_grad_matches_the_fused_kernel(causal):
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(3, 2, 6, 8, generator=g) for _ in range(3))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] + [0] * 5], dtype=torch.bool)[:, None, None, :]
    mask = None if causal else mask
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    with torch.no_grad():
        got = attend(q, k, v, mask, causal)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_cross_attention_reads_one_memory_for_the_k_rows_of_a_source():
    torch.manual_seed(5)
    attn, A, K, T, S = CrossAttention(16, 4, 12), 3, 5, 2, 7
    x, memory = torch.randn(A * K, T, 16), torch.randn(A, S, 12)
    mask = torch.arange(S)[None, :] < torch.tensor([7, 3, 1])[:, None]
    shared = attn(x, attn.project(memory), mask)
    copied = attn(x, attn.project(memory.repeat_interleave(K, 0)), mask.repeat_interleave(K, 0))
    torch.testing.assert_close(shared, copied, atol=1e-5, rtol=1e-5)
    weights = attn.weights(x, attn.project(memory), mask)
    assert weights.shape == (A * K, 4, T, S)
    torch.testing.assert_close(weights, attn.weights(x, attn.project(memory.repeat_interleave(K, 0)),
                                                     mask.repeat_interleave(K, 0)))


def test_causal_mask_with_offset():
    m = causal_mask(2, 3, "cpu")
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]


@pytest.mark.parametrize("grad", [True, False])
def test_self_attention_takes_any_mask_and_continues_its_cache_with_it(grad):
    torch.manual_seed(6)
    attn, x = SelfAttention(8, 2), torch.randn(2, 6, 8)
    # keys a query may see: its block of two and the blocks before (as the frames decoder's frame blocks)
    blocks = torch.arange(6) // 2
    mask = blocks[None, :] <= blocks[:, None]  # (6, 6)
    with torch.set_grad_enabled(grad):
        whole, _ = attn(x, mask=mask, cache=KVCache.empty(2, 2, 4, x, x.dtype))
        first, cache = attn(x[:, :2], mask=mask[:2, :2], cache=KVCache.empty(2, 2, 4, x, x.dtype))
        rest, _ = attn(x[:, 2:], mask=mask[2:], cache=cache)
        # a block's queries see exactly the prefix that ends with it: unmasked attention over that prefix
        by_hand = torch.cat([attn(x[:, :end])[0][:, end - 2:end] for end in (2, 4, 6)], 1)
    torch.testing.assert_close(torch.cat([first, rest], 1), whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(whole, by_hand, atol=1e-5, rtol=1e-5)
    token_causal, _ = attn(x, causal=True)
    torch.testing.assert_close(attn(x, mask=causal_mask(6, 0, "cpu"), causal=True)[0], token_causal,
                               atol=1e-5, rtol=1e-5)
