"""Beam search pinned against greedy, brute force, replayed scores, batching and pruning."""
import math

import pytest
import torch

from any2seq.search import beam_search, greedy
from any2seq.search.beam import top_candidates, topk

from .toy import ToyStep, brute_force


def run_beam(step, keys, max_len, **kwargs):
    state = step.init_state(keys)
    return beam_search(step, state, len(keys), step.bos, step.eos, max_len, **kwargs)


def as_tuples(hyps):
    return [(hyp.tokens, hyp.score) for hyp in hyps]


def test_beam_size_one_equals_greedy():
    step = ToyStep(vocab=7, bos=6, eos=0, seed=1, eos_bias=1.0)
    keys, max_len = [0, 1, 2, 3, 4, 5], torch.tensor([5, 1, 7, 3, 6, 0])
    by_beam = beam_search(step, step.init_state(keys), 6, 6, 0, max_len, beam=1)
    by_greedy = greedy(step, step.init_state(keys), 6, 6, 0, max_len)
    assert [as_tuples(hyps) for hyps in by_beam] == [as_tuples(hyps) for hyps in by_greedy]
    assert any(len(hyps[0].tokens) < n for hyps, n in zip(by_greedy, max_len.tolist()))  # some eos
    assert by_beam[5][0].tokens == [] and by_beam[5][0].score == 0.0


@pytest.mark.parametrize("length_penalty,eos_bias,n_best", [
    (0.0, 0.0, 10), (1.0, 0.0, 10), (1.0, 2.5, 2), (2.0, 2.5, 10),
    (2.0, 0.0, 1),  # a long hypothesis wins late: catches an early stop that underestimates it
])
def test_wide_beam_equals_brute_force(length_penalty, eos_bias, n_best):
    step, keys, limits = ToyStep(seed=2, eos_bias=eos_bias), [3, 17, 42, 99], [4, 2, 3, 1]
    # 121 = 1 + 3 + 9 + 27 + 81 sequences at max_len 4: a beam that wide never prunes.
    found = run_beam(step, keys, torch.tensor(limits), beam=121, n_best=n_best,
                     length_penalty=length_penalty)
    for hyps, key, limit in zip(found, keys, limits):
        expected = brute_force(step, key, limit, length_penalty)[:n_best]
        assert [hyp.tokens for hyp in hyps] == [tokens for _, tokens, _ in expected]
        assert [hyp.score for hyp in hyps] == pytest.approx([s for _, _, s in expected], abs=1e-5)
        assert [h.normalized for h in hyps] == pytest.approx([n for n, _, _ in expected], abs=1e-5)


@pytest.mark.parametrize("beam,length_penalty", [(3, 0.0), (3, 1.0), (4, 0.6)])
def test_n_best_sorted_distinct_and_scored_by_replay(beam, length_penalty):
    step, keys = ToyStep(seed=3, eos_bias=0.5), [7, 8, 9]
    found = run_beam(step, keys, 4, beam=beam, n_best=beam, length_penalty=length_penalty)
    for hyps, key in zip(found, keys):
        assert len(hyps) == beam
        assert len({tuple(hyp.tokens) for hyp in hyps}) == beam
        assert [h.normalized for h in hyps] == sorted([h.normalized for h in hyps], reverse=True)
        for hyp in hyps:
            ended = len(hyp.tokens) < 4
            assert hyp.score == pytest.approx(step.replay(key, hyp.tokens, ended), abs=1e-5)
            length = len(hyp.tokens) + ended
            assert hyp.normalized == pytest.approx(hyp.score / length ** length_penalty, abs=1e-5)
        best, _, _ = brute_force(step, key, 4, length_penalty)[0]
        assert hyps[0].normalized <= best + 1e-5  # a narrow beam may miss the best, never beat it


def reference_beam(step, key, max_len, beam, length_penalty):
    """fairseq's rules for one sentence, plainly: eos finalised from the top ``beam`` candidates,
    stop at ``beam`` finished or at max_len (live beams cut there). (tokens, score), best first."""
    live = [(0.0, [], step.init_state([key]), step.bos)]  # (score, tokens, state, last token)
    finished = []  # (normalized, tokens, score)
    for t in range(max_len):
        cands = []
        for score, tokens, state, last in live:
            log_probs, state = step.next(torch.tensor([last]), state)
            cands += [(score + lp, tokens, token, state)
                      for token, lp in enumerate(log_probs[0].tolist())]
        cands = sorted((c for c in cands if c[0] > -math.inf), key=lambda c: -c[0])
        penalty = (t + 1) ** length_penalty
        finished += [(s / penalty, tokens, s)
                     for s, tokens, token, _ in cands[:beam] if token == step.eos]
        live = [(s, tokens + [token], state, token) for s, tokens, token, state in cands
                if token != step.eos][:beam]
        if t + 1 == max_len:
            finished += [(s / penalty, tokens, s) for s, tokens, _, _ in live]
        if len(finished) >= beam or t + 1 == max_len:
            break
    return [(tokens, score) for _, tokens, score in sorted(finished, key=lambda h: -h[0])]


@pytest.mark.parametrize("per_source", [False, True])
@pytest.mark.parametrize("beam,n_best,length_penalty,eos_bias,vocab", [
    (1, 1, 1.0, 1.0, 6), (2, 2, 0.0, 1.0, 6), (3, 1, 1.0, 2.0, 6), (4, 4, 2.0, 0.5, 6), (4, 1, 2.0, 2.0, 6),
    (5, 2, 0.0, 3.0, 6), (5, 5, 1.0, 1.5, 6),
    (5, 2, 1.0, 3.0, 701),  # 5 x 701 candidates: the blocked top-k, with a padded last block
])
def test_matches_a_plain_one_sentence_reference(beam, n_best, length_penalty, eos_bias, vocab, per_source):
    step = ToyStep(vocab=vocab, bos=5, seed=11 + beam, eos_bias=eos_bias, per_source=per_source)
    keys, limits = [2, 3, 5, 7], [6, 4, 8, 1]
    found = run_beam(step, keys, torch.tensor(limits), beam=beam, n_best=n_best,
                     length_penalty=length_penalty)
    for hyps, key, limit in zip(found, keys, limits):
        expected = reference_beam(step, key, limit, beam, length_penalty)[:n_best]
        assert [hyp.tokens for hyp in hyps] == [tokens for tokens, _ in expected]
        assert [hyp.score for hyp in hyps] == pytest.approx([s for _, s in expected], abs=1e-5)


def test_batching_does_not_change_results():
    step, keys, limits = ToyStep(vocab=6, bos=5, seed=4, eos_bias=0.5), [5, 8, 13], [6, 3, 5]
    alone = [run_beam(step, [key], limit, beam=3, n_best=3)[0] for key, limit in zip(keys, limits)]
    together = run_beam(step, keys, torch.tensor(limits), beam=3, n_best=3)
    assert [as_tuples(hyps) for hyps in together] == [as_tuples(hyps) for hyps in alone]


@pytest.mark.parametrize("per_source", [False, True])
def test_finished_sentences_leave_the_batch(per_source):
    step = ToyStep(ban_eos=True, per_source=per_source)  # no eos: each runs exactly to its limit
    found = run_beam(step, [1, 2, 3], torch.tensor([1, 3, 2]), beam=2)
    assert step.calls == [3, 4, 2]  # the first step reads one row per sentence
    for (hyp,), key in zip(found, [1, 2, 3]):  # the rows left read their own sentence's key
        assert hyp.score == pytest.approx(step.replay(key, hyp.tokens, ended=False), abs=1e-5)


@pytest.mark.parametrize("shape,k", [((3, 2560), 10), ((3, 40000), 10), ((2, 5001), 7), ((4, 3000), 1)])
def test_blocked_topk_equals_torch_topk(shape, k):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    x[0, : shape[1] // 2] = float("-inf")  # a row half -inf, and ties: a row of few values
    x[1] = torch.randint(0, 3, (shape[1],)).float()
    values, indices = topk(x, k)
    expected = x.topk(k, dim=1)
    assert torch.equal(values, expected.values)
    assert torch.equal(x.gather(1, indices), values)  # indices point at those values
    assert all(len(set(row)) == k for row in indices.tolist())


@pytest.mark.parametrize("A,W,V,k", [(3, 5, 8000, 10), (2, 1, 8000, 10), (2, 5, 1000, 4), (2, 3, 1001, 6), (1, 2, 64, 2)])
def test_top_candidates_equal_topk_of_every_sum(A, W, V, k):
    """The best of scores + log-probs, found from the best blocks, equal torch.topk over the
    materialised (A, W * V) sums, values and all; the fallbacks (small or odd V) too."""
    g = torch.Generator().manual_seed(1)
    log_probs = torch.randn(A, W, V, generator=g).log_softmax(-1)
    scores = -5 * torch.rand(A, W, generator=g)
    scores[0, -1] = float("-inf")  # a dead beam
    log_probs[-1, 0, : V // 2] = float("-inf")
    sums = (scores[:, :, None] + log_probs).reshape(A, W * V)
    values, indices = top_candidates(scores, log_probs, k)
    assert torch.equal(values, sums.topk(k, dim=1).values)
    assert torch.equal(sums.gather(1, indices), values)
    assert all(len(set(row)) == k for row in indices.tolist())


def test_stops_once_no_live_beam_can_enter_the_n_best():
    step = ToyStep(eos_bias=8.0)  # eos first is by far the best; nothing longer can catch up
    found = run_beam(step, [1, 2], 6, beam=5, length_penalty=0.0)
    assert step.calls == [2]  # one step, one row per sentence
    assert [hyps[0].tokens for hyps in found] == [[], []]


def test_hypotheses_cut_at_max_len_have_no_eos_term():
    step = ToyStep(ban_eos=True)
    (hyp,), = run_beam(step, [4], 3, beam=2)
    assert len(hyp.tokens) == 3
    assert hyp.score == pytest.approx(step.replay(4, hyp.tokens, ended=False), abs=1e-5)
    assert math.isfinite(hyp.score)


def test_bad_arguments_are_rejected():
    step = ToyStep()
    with pytest.raises(ValueError, match="n_best"):
        run_beam(step, [1], 3, beam=2, n_best=3)
    with pytest.raises(ValueError, match="beam"):
        run_beam(step, [1], 3, beam=0)
    with pytest.raises(ValueError, match="max_len"):
        run_beam(step, [1, 2], torch.tensor([3]))
