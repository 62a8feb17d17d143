"""Concept-to-text: concepts and coverage, and the n-best reranking by concepts covered."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from any2seq.config import config_from_dict
from any2seq.inference import SearchOptions
from any2seq.tasks import base
from any2seq.tasks import text_generation as tg


def test_concepts_are_the_sorted_content_words():
    assert tg.concepts("A man rides his bike on a dirt road, a man.") == ["bike", "dirt", "man", "rides", "road"]
    assert tg.covered("bike dirt man", "The man's bike.") == 1  # "man's" is another word; bike counts
    assert tg.coverage(["bike man", "dog"], ["a man on a bike", "a cat"]) == 100 * 2 / 3


WORDS = {1: "man", 2: "sits", 3: "bike", 4: "road"}


class FakeTokenizer:
    def decode(self, ids):
        return [" ".join(WORDS[i] for i in row) for row in ids]


def test_beam_outputs_are_reranked_by_concepts_covered_then_score(monkeypatch):
    beam = [SimpleNamespace(tokens=[1, 2], normalized=-0.1), SimpleNamespace(tokens=[1, 3], normalized=-0.2),
            SimpleNamespace(tokens=[3, 4], normalized=-0.3)]
    asked = {}

    def decode_items(model, src, opts, **batching):
        asked["n_best"] = opts.n_best
        return [beam]

    monkeypatch.setattr(base, "decode_items", decode_items)
    monkeypatch.setattr(tg.TextGeneration, "source_items", lambda self, cfg, toks, sources: None)
    task, toks = tg.TextGeneration(), SimpleNamespace(tgt=FakeTokenizer())
    cfg = config_from_dict({"task": "text_generation"})
    opts = SearchOptions(beam=3)
    best = task.outputs(None, toks, cfg, ["bike road"], opts, "cpu")
    assert asked["n_best"] == 3  # the whole beam is decoded to choose from
    assert [o["text"] for o in best[0]] == ["bike road"]  # covers both concepts, though scored lowest
    two = task.outputs(None, toks, cfg, ["bike"], dataclasses.replace(opts, n_best=2), "cpu")
    assert [o["text"] for o in two[0]] == ["man bike", "bike road"]  # ties keep the search's order
    off = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, rerank=False))
    assert [o["text"] for o in task.outputs(None, toks, off, ["bike road"], opts, "cpu")[0]] == ["man sits"]
