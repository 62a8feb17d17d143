"""``decode_ids`` on trained models: batch size and padding never change a translation, n-best
lists come sorted, limits hold, and search over a real model agrees with itself."""
import pytest
import torch

from any2seq.inference import SearchOptions, decode_ids
from any2seq.interfaces import BOS_ID, EOS_ID
from any2seq.modeldir import load_model
from any2seq.search import beam_search, greedy

from .conftest import multi30k


@pytest.fixture(scope="module", params=["trained", "trained_rnn"], ids=["transformer", "gru-bahdanau"])
def loaded(request):
    """(model, tokenizers) of a session run, read back from its model directory."""
    model, toks, _, _ = load_model(request.getfixturevalue(request.param).dir)
    return model, toks


@pytest.fixture(scope="module")
def sources(trained, loaded) -> list[list[int]]:
    """37 sources of 1 to 30-odd tokens: the memorised ones, unseen Multi30k sentences, short ones."""
    _, toks = loaded
    lines = [de for de, _ in trained.pairs] + list(multi30k("val", "de")[20:34]) + ["Hund", "Ein Mann.", "Zwei Hunde"]
    ids = toks.src.encode(lines)
    assert len(ids) == 37 and min(map(len, ids)) <= 5 and max(map(len, ids)) >= 30
    return ids


def count_batches(model, monkeypatch) -> list[int]:
    """Record the number of rows of every batch ``model`` encodes."""
    rows, encode = [], model.encode
    monkeypatch.setattr(model, "encode", lambda src, lengths: rows.append(src.size(0)) or encode(src, lengths))
    return rows


def tokens(results) -> list[list[list[int]]]:
    return [[h.tokens for h in n_best] for n_best in results]


@pytest.mark.parametrize("beam", [1, 4], ids=["greedy", "beam4"])
def test_batch_size_and_padding_never_change_a_translation(loaded, sources, beam, monkeypatch):
    model, _ = loaded
    opts = SearchOptions(beam=beam)
    rows = count_batches(model, monkeypatch)
    alone = [decode_ids(model, [s], opts)[0] for s in sources]
    assert rows == [1] * 37
    rows.clear()
    together = decode_ids(model, sources, opts, batch_tokens=10**6)
    assert rows == [37]
    rows.clear()
    small = decode_ids(model, sources, opts, batch_tokens=200)
    assert len(rows) > 3 and sum(rows) == 37

    outputs = tokens(alone)
    assert len({tuple(n_best[0]) for n_best in outputs}) >= 30  # real, varied translations
    assert len({len(n_best[0]) for n_best in outputs}) >= 8
    assert tokens(together) == outputs
    assert tokens(small) == outputs
    for a, b, c in zip(alone, together, small):
        assert a[0].score == pytest.approx(b[0].score, abs=1e-4) == pytest.approx(c[0].score, abs=1e-4)


def test_outputs_come_back_in_input_order_and_empty_sources_give_empty_outputs(loaded, sources):
    model, _ = loaded
    opts = SearchOptions(beam=3)
    picked = [sources[5], [], sources[30], sources[0], []]
    out = decode_ids(model, picked, opts, batch_tokens=10**6)
    assert out[1][0].tokens == [] and out[4][0].tokens == []
    for i in (0, 2, 3):
        assert out[i][0].tokens == decode_ids(model, [picked[i]], opts)[0][0].tokens
    assert decode_ids(model, [], opts) == []


def test_n_best_lists_are_sorted_and_distinct(loaded, sources):
    model, _ = loaded
    best = decode_ids(model, sources[:10], SearchOptions(beam=5))
    n_best = decode_ids(model, sources[:10], SearchOptions(beam=5, n_best=3))
    for one, three in zip(best, n_best):
        assert len(three) == 3
        assert three[0].tokens == one[0].tokens
        assert three[0].normalized >= three[1].normalized >= three[2].normalized
        assert len({tuple(h.tokens) for h in three}) == 3


def test_output_length_limits_hold(loaded, sources):
    model, _ = loaded
    for beam in (1, 4):
        capped = decode_ids(model, sources, SearchOptions(beam=beam, max_len=3))
        assert all(len(n[0].tokens) <= 3 for n in capped)
        per_source = decode_ids(model, sources, SearchOptions(beam=beam, max_len_a=0.5, max_len_b=1))
        assert all(len(n[0].tokens) <= int(len(s) * 0.5 + 1) for s, n in zip(sources, per_source))


@torch.inference_mode()
def test_beam_one_is_greedy_on_a_real_model(loaded, sources):
    model, _ = loaded
    src = torch.zeros(len(sources), max(map(len, sources)), dtype=torch.long)
    for i, s in enumerate(sources):
        src[i, : len(s)] = torch.tensor(s)
    lengths = torch.tensor([len(s) for s in sources])
    state = model.encode(src, lengths)
    by_greedy = greedy(model.step, state, len(sources), BOS_ID, EOS_ID, 40)
    by_beam = beam_search(model.step, state, len(sources), BOS_ID, EOS_ID, 40, beam=1)
    assert tokens(by_beam) == tokens(by_greedy)


def test_sampling_is_repeatable_and_top_k_1_is_greedy(loaded, sources):
    model, _ = loaded
    sample = SearchOptions(sample=True, top_k=5, seed=1)
    first, again = tokens(decode_ids(model, sources, sample)), tokens(decode_ids(model, sources, sample))
    assert first == again
    other = tokens(decode_ids(model, sources, SearchOptions(sample=True, top_k=5, seed=2)))
    assert other != first
    top1 = decode_ids(model, sources, SearchOptions(sample=True, top_k=1, seed=3))
    assert tokens(top1) == tokens(decode_ids(model, sources, SearchOptions(beam=1)))


@pytest.mark.parametrize("seed", [-1, 2 ** 64])
def test_a_seed_torch_cannot_take_is_a_user_error(seed):
    from any2seq.errors import UserError

    with pytest.raises(UserError, match="--seed: must be in 0..2\\*\\*64-1"):
        SearchOptions(sample=True, seed=seed)


@pytest.mark.parametrize("opts", [SearchOptions(beam=1), SearchOptions(beam=4, n_best=2),
                                  SearchOptions(sample=True, top_k=5, seed=4)], ids=["greedy", "beam4", "sample"])
def test_workers_decode_batches_at_once_with_the_same_outputs(loaded, sources, opts, monkeypatch):
    import threading

    import any2seq.inference as inference

    model, _ = loaded
    one = tokens(decode_ids(model, sources, opts, batch_size=5))
    seen, search = [], inference._search

    def recording(*args):  # which thread decodes each batch, with how many intra-op threads
        seen.append((threading.get_ident(), torch.get_num_threads()))
        return search(*args)

    monkeypatch.setattr(inference, "_search", recording)
    threads = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        two = tokens(decode_ids(model, sources, opts, batch_size=5, workers=2))
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    assert two == one
    assert len(seen) == 8  # 37 sources, at most 5 a batch
    assert len({ident for ident, _ in seen}) == 2 and threading.get_ident() not in {i for i, _ in seen}
    assert {n for _, n in seen} == {2}  # 4 threads split between 2 workers
    assert after == 4  # restored for the caller


def test_batch_size_caps_the_sources_of_a_batch_and_batch_tokens_still_applies(loaded, sources, monkeypatch):
    model, _ = loaded
    rows = count_batches(model, monkeypatch)
    decode_ids(model, sources, SearchOptions(beam=1), batch_tokens=10**6, batch_size=10)
    assert rows == [10, 10, 10, 7]
    rows.clear()
    decode_ids(model, sources, SearchOptions(beam=1), batch_tokens=200, batch_size=10)
    assert rows[0] < 10 and max(rows) == 10 and sum(rows) == 37  # long sources: tokens bind; short: the cap


@pytest.mark.parametrize("batching, message", [({"workers": 0}, "--workers: must be an integer >= 1, got 0"),
                                               ({"batch_size": -1}, "--batch-size: must be an integer >= 0"),
                                               ({"batch_tokens": 0}, "--batch-tokens: must be an integer >= 1"),
                                               ({"workers": 1.5}, "--workers: must be an integer >= 1, got 1.5")])
def test_bad_batching_is_a_user_error_naming_the_flag(loaded, sources, batching, message):
    from any2seq.errors import UserError

    with pytest.raises(UserError, match=message.replace("+", "\\+")):
        decode_ids(loaded[0], sources, SearchOptions(beam=1), **batching)
