"""Greedy decoding pinned against a one-row-at-a-time reference, batching and pruning."""
import pytest
import torch

from any2seq.search import Hypothesis, beam_search, greedy, sample

from .toy import ToyStep


def run_greedy(step, keys, max_len):
    state = step.init_state(keys)
    return [hyps[0] for hyps in greedy(step, state, len(keys), step.bos, step.eos, max_len)]


def reference(step, key, max_len):
    """Plain greedy decoding of one row, written the obvious way."""
    state, token, tokens, score = step.init_state([key]), step.bos, [], 0.0
    for _ in range(max_len):
        log_probs, state = step.next(torch.tensor([token]), state)
        token = int(log_probs[0].argmax())
        score += log_probs[0, token].item()
        if token == step.eos:
            break
        tokens.append(token)
    return tokens, score


def test_matches_the_one_row_reference():
    step = ToyStep(vocab=7, bos=6, seed=5, eos_bias=1.0)
    keys, limits = [0, 1, 2, 3, 4], [6, 2, 8, 5, 0]
    found = run_greedy(step, keys, torch.tensor(limits))
    for hyp, key, limit in zip(found, keys, limits):
        tokens, score = reference(step, key, limit)
        assert hyp.tokens == tokens
        assert hyp.score == pytest.approx(score, abs=1e-5) and hyp.normalized == hyp.score
    assert any(len(hyp.tokens) < limit for hyp, limit in zip(found, limits) if limit)  # some eos


def test_batching_does_not_change_results():
    step, keys, limits = ToyStep(vocab=6, bos=5, seed=6, eos_bias=0.5), [5, 8, 13, 21], [6, 3, 5, 7]
    alone = [run_greedy(step, [key], limit)[0] for key, limit in zip(keys, limits)]
    assert run_greedy(step, keys, torch.tensor(limits)) == alone


def test_finished_rows_leave_the_batch():
    step = ToyStep(ban_eos=True)  # no eos: each row runs exactly to its limit
    found = run_greedy(step, [1, 2, 3], torch.tensor([1, 4, 2]))
    assert step.calls == [3, 2, 1, 1]
    assert [len(hyp.tokens) for hyp in found] == [1, 4, 2]


def test_each_row_costs_one_call_per_token_it_emits():
    step, limits = ToyStep(vocab=6, bos=5, seed=7, eos_bias=1.0), [5, 5, 5, 5, 5, 5]
    found = run_greedy(step, list(range(6)), 5)
    emitted = [len(hyp.tokens) + (len(hyp.tokens) < limit) for hyp, limit in zip(found, limits)]
    assert sum(step.calls) == sum(emitted)
    assert step.calls == sorted(step.calls, reverse=True) and step.calls[-1] < 6


def test_zero_max_len_gives_the_empty_hypothesis_without_a_call():
    step = ToyStep()
    assert run_greedy(step, [1, 2], 0) == [Hypothesis([], 0.0, 0.0)] * 2
    assert step.calls == []


def test_bad_max_len_is_rejected():
    step = ToyStep()
    with pytest.raises(ValueError, match="shape"):
        run_greedy(step, [1, 2], torch.tensor([3, 3, 3]))
    with pytest.raises(ValueError, match=">= 0"):
        run_greedy(step, [1, 2], -1)


def test_an_empty_batch_gives_no_results():
    step = ToyStep()
    state = step.init_state([])
    assert greedy(step, state, 0, step.bos, step.eos, 5) == []
    assert beam_search(step, state, 0, step.bos, step.eos, 5) == []
    assert sample(step, state, 0, step.bos, step.eos, 5) == []
    assert step.calls == []
