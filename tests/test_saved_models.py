"""A model saved by an earlier version decodes to the same outputs: loading, the model's layout and
search must not drift (fixtures/saved_models/make_tiny_translation.py wrote the model and its outputs)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import any2seq

FIXTURES = Path(__file__).parent / "fixtures" / "saved_models"


def test_tiny_translation_decodes_as_when_saved():
    expected = json.loads((FIXTURES / "tiny_translation.expected.json").read_text(encoding="utf-8"))
    predictor = any2seq.load(FIXTURES / "tiny_translation", dtype="fp32")
    for name, options in expected["searches"].items():
        results = predictor.predict(expected["sentences"], max_len=20, **options)
        texts = [[o["text"] for o in r["outputs"]] for r in results]
        assert texts == [[o["text"] for o in r["outputs"]] for r in expected["outputs"][name]], name
        scores = [o["score"] for r in results for o in r["outputs"]]
        # the same bits on the machine that saved them; a last-bit margin for other CPUs' kernels
        assert scores == pytest.approx([o["score"] for r in expected["outputs"][name] for o in r["outputs"]],
                                       rel=1e-6, abs=1e-6), name
