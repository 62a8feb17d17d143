"""Search over a step function: greedy, beam search, and ancestral sampling with composable filters.

Nothing here imports a model: ``step(tokens, state) -> (log_probs, state)`` is all search sees,
and it touches state only through ``any2seq.interfaces.reorder_state``.
"""
from any2seq.search.beam import beam_search
from any2seq.search.filters import compose, temperature, top_k, top_p
from any2seq.search.greedy import Hypothesis, greedy
from any2seq.search.sample import sample

__all__ = ["Hypothesis", "greedy", "beam_search", "sample",
           "temperature", "top_k", "top_p", "compose"]
