"""Sampling and its filters: repeatable draws, greedy limits, real scores, bad values rejected."""
import math

import pytest
import torch

from any2seq.search import compose, greedy, sample, temperature, top_k, top_p

from .toy import ToyStep


def run_sample(step, keys, max_len, seed=0, **kwargs):
    generator = torch.Generator().manual_seed(seed)
    state = step.init_state(keys)
    return sample(step, state, len(keys), step.bos, step.eos, max_len, generator=generator,
                  **kwargs)


def as_tuples(hyps):
    return [(hyp.tokens, hyp.score) for hyp in hyps]


def test_same_seed_same_samples_other_seed_other_samples():
    step, keys = ToyStep(vocab=7, bos=6, seed=8), [1, 2, 3]
    first, again = run_sample(step, keys, 6, n=4), run_sample(step, keys, 6, n=4)
    assert [as_tuples(hyps) for hyps in first] == [as_tuples(hyps) for hyps in again]
    assert [len(hyps) for hyps in first] == [4, 4, 4]
    other = run_sample(step, keys, 6, seed=1, n=4)
    assert [as_tuples(hyps) for hyps in other] != [as_tuples(hyps) for hyps in first]


@pytest.mark.parametrize("filters", [[temperature(3.0), top_k(1)], [temperature(3.0), top_p(1e-6)],
                                     [temperature(1e-300)], [temperature(1e-300), top_p(1e-300)]],
                         ids=["top_k=1", "top_p=tiny", "temperature=1e-300", "both=1e-300"])
def test_keeping_only_the_top_token_is_greedy(filters):
    step = ToyStep(vocab=7, bos=6, seed=9, eos_bias=1.0)
    keys, limits = [4, 5, 6], torch.tensor([7, 2, 5])
    by_greedy = greedy(step, step.init_state(keys), 3, step.bos, step.eos, limits)
    by_sample = run_sample(step, keys, limits, filters=filters, n=2)
    assert [as_tuples(hyps) for hyps in by_sample] == [as_tuples(hyps) * 2 for hyps in by_greedy]


def test_scores_are_the_models_unfiltered_log_probs_and_filters_hold():
    step, keys = ToyStep(vocab=7, bos=6, seed=10, eos_bias=1.0), [1, 2]
    found = run_sample(step, keys, 5, filters=compose(temperature(0.7), top_k(2)), n=5)
    for hyps, key in zip(found, keys):
        for hyp in hyps:
            ended = len(hyp.tokens) < 5
            assert hyp.score == pytest.approx(step.replay(key, hyp.tokens, ended), abs=1e-5)
            state, prev = step.init_state([key]), step.bos
            for token in hyp.tokens + [step.eos] * ended:  # each draw was among the top two
                log_probs, state = step.next(torch.tensor([prev]), state)
                assert token in log_probs[0].topk(2).indices.tolist()
                prev = token


def fixed_step(probs):
    """A step function that always predicts ``probs``; the state holds nothing but the batch."""
    log_probs = torch.tensor(probs).log()
    return lambda tokens, state: (log_probs.expand(tokens.numel(), -1), state)


@pytest.mark.parametrize("filters,expected", [
    ((), [0.1, 0.2, 0.3, 0.4]),
    ((top_k(2),), [0.0, 0.0, 3 / 7, 4 / 7]),
    ((top_p(0.65),), [0.0, 0.0, 3 / 7, 4 / 7]),
    ((temperature(0.5),), [0.1 ** 2 / 0.3, 0.2 ** 2 / 0.3, 0.3 ** 2 / 0.3, 0.4 ** 2 / 0.3]),
])
def test_draws_follow_the_filtered_distribution(filters, expected):
    n = 4000
    state = {"rows": torch.zeros(1, 1)}
    (hyps,) = sample(fixed_step([0.1, 0.2, 0.3, 0.4, 0.0]), state, 1, 4, 0, 1, filters=filters,
                     generator=torch.Generator().manual_seed(0), n=n)
    counts = torch.bincount(torch.tensor([hyp.tokens[0] if hyp.tokens else 0 for hyp in hyps]),
                            minlength=5)
    assert (counts[:4] / n).tolist() == pytest.approx(expected, abs=0.03)
    assert counts[4] == 0  # bos has probability 0


def test_temperature_sharpens_below_one_and_flattens_above():
    log_probs = torch.randn(3, 10, generator=torch.Generator().manual_seed(0)).log_softmax(-1)

    def entropy(logits):
        probs = logits.softmax(-1)
        return -(probs * probs.log()).sum(-1)

    assert (entropy(temperature(0.5)(log_probs)) < entropy(log_probs)).all()
    assert (entropy(temperature(2.0)(log_probs)) > entropy(log_probs)).all()
    assert torch.equal(temperature(0.5)(log_probs).argmax(-1), log_probs.argmax(-1))


def test_top_k_and_top_p_keep_the_right_sets():
    log_probs = torch.tensor([[0.05, 0.5, 0.15, 0.3]]).log()
    kept = lambda keep: keep(log_probs).isfinite()[0].tolist()
    assert kept(top_k(2)) == [False, True, False, True]
    assert kept(top_k(9)) == [True] * 4
    assert kept(top_p(0.5)) == [False, True, False, False]  # 0.5 alone reaches 0.5
    assert kept(top_p(0.79)) == [False, True, False, True]
    assert kept(top_p(0.81)) == [False, True, True, True]
    assert kept(top_p(1.0)) == [True] * 4
    assert torch.equal(top_p(0.81)(log_probs)[0, 1:], log_probs[0, 1:])  # kept values unchanged


def test_compose_applies_left_to_right():
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert torch.equal(compose(top_k(2), temperature(0.5))(logits),
                       temperature(0.5)(top_k(2)(logits)))
    assert torch.equal(compose()(logits), logits)


@pytest.mark.parametrize("make,value", [
    (temperature, 0.0), (temperature, -1.0), (temperature, math.nan),
    (top_k, 0), (top_k, 1.5), (top_p, 0.0), (top_p, 1.5), (top_p, -0.1),
])
def test_filters_reject_bad_values(make, value):
    with pytest.raises(ValueError, match=make.__name__):
        make(value)


def test_sample_rejects_bad_n():
    step = ToyStep()
    with pytest.raises(ValueError, match="n must be"):
        run_sample(step, [1], 3, n=0)
