"""KVCache: row selections stay lazy until the next append gathers them, and a cache is a value."""
import torch

from any2seq.interfaces import map_state, reorder_state
from any2seq.nn.kv_cache import KVCache


def kv(B: int, T: int, seed: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, 2, T, 4, generator=g).to(dtype) for _ in range(2))


def eager(cache_kv, index, new_kv):
    return tuple(torch.cat([old.index_select(0, index), new.float()], 2) for old, new in zip(cache_kv, new_kv))


def test_selections_compose_lazily_and_the_next_append_gathers_them():
    k, v = kv(4, 3, seed=0)
    cache = KVCache.empty(4, 2, 4, k, torch.float32).append(k, v)
    first, second = torch.tensor([3, 0, 0, 2, 1]), torch.tensor([4, 4, 1])
    state = reorder_state({"self": [cache]}, first)
    state = reorder_state(state, second)
    selected = state["self"][0]
    assert selected.k.data_ptr() == cache.k.data_ptr()  # nothing copied yet
    new = kv(3, 1, seed=1, dtype=torch.bfloat16)  # bf16 rows into a float32 cache, as bf16 decoding does
    appended = selected.append(*new)
    want = eager((k, v), first[second], new)
    assert appended.rows is None and appended.dtype == torch.float32
    assert torch.equal(appended.k, want[0]) and torch.equal(appended.v, want[1])


def test_a_cache_is_a_value():
    k, v = kv(3, 2, seed=2)
    cache = KVCache(k.clone(), v.clone()).select(torch.tensor([2, 2, 0]))
    new = kv(3, 1, seed=3)
    a, b = cache.append(*new), cache.append(*new)  # the same cache continued twice
    assert torch.equal(a.k, b.k) and a.k.data_ptr() != b.k.data_ptr()
    assert torch.equal(cache.k, k) and torch.equal(cache.v, v)  # left alone
    assert torch.equal(cache.tensors()[0], k[[2, 2, 0]])


def test_other_maps_see_the_selected_rows():
    k, v = kv(3, 2, seed=4)
    cache = KVCache(k, v).select(torch.tensor([1, 0]))
    halves = map_state(lambda t: t.half(), [cache])[0]
    assert halves.rows is None and halves.k.dtype == torch.float16
    assert torch.equal(halves.k, k[[1, 0]].half()) and torch.equal(halves.v, v[[1, 0]].half())


def test_gradients_flow_through_a_selected_cache():
    k, v = (t.requires_grad_() for t in kv(2, 2, seed=5))
    new_k, new_v = (t.requires_grad_() for t in kv(2, 1, seed=6))
    out = KVCache(k, v).select(torch.tensor([1, 1])).append(new_k, new_v)
    (out.k.sum() + 2 * out.v.sum()).backward()
    assert torch.equal(k.grad[1], torch.full_like(k[1], 2.0)) and torch.equal(k.grad[0], torch.zeros_like(k[0]))
    assert torch.equal(new_v.grad, torch.full_like(new_v, 2.0))


def test_appends_grow_in_place_and_equal_concatenation():
    k, v = kv(3, 1, seed=7)
    cache, want_k, want_v = KVCache.empty(3, 2, 4, k, torch.float32), k[:, :, :0], v[:, :, :0]
    history = []
    for t in range(40):  # past the first capacity and a doubling
        new = kv(3, 1, seed=100 + t)
        cache = cache.append(*new)
        want_k, want_v = torch.cat([want_k, new[0]], 2), torch.cat([want_v, new[1]], 2)
        history.append((cache, want_k, want_v))
        assert cache.length == t + 1 and torch.equal(cache.k, want_k) and torch.equal(cache.v, want_v)
    assert history[20][0].buf is history[25][0].buf  # no copy between doublings
    for old, old_k, old_v in history:  # every earlier cache still sees its own positions only
        assert torch.equal(old.k, old_k) and torch.equal(old.v, old_v)


def test_an_older_cache_continued_again_copies_instead_of_overwriting():
    k, v = kv(2, 3, seed=8)
    base = KVCache.empty(2, 2, 4, k, torch.float32).append(k, v)
    a_new, b_new = kv(2, 1, seed=9), kv(2, 1, seed=10)
    a = base.append(*a_new)  # in place, after base's positions
    b = base.append(*b_new)  # base no longer ends the buffer: a fresh one
    assert a.buf is base.buf and b.buf is not base.buf
    assert torch.equal(a.k, torch.cat([k, a_new[0]], 2)) and torch.equal(b.k, torch.cat([k, b_new[0]], 2))
    assert torch.equal(a.append(*b_new).v, torch.cat([v, a_new[1], b_new[1]], 2))
