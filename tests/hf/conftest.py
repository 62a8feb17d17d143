"""Session fixtures for the Hugging Face tests: one tiny trained MarianMTModel, its import, and
the 200 sentences every comparison decodes."""
from __future__ import annotations

from pathlib import Path

import pytest

from any2seq.cli import main

from .tiny_marian import build_tiny_marian, short_pairs


@pytest.fixture(scope="session")
def pairs():
    return short_pairs()


@pytest.fixture(scope="session")
def sentences(pairs) -> list[str]:
    """200 inputs: the 24 training sources and other German and English sentences."""
    return [s for s, _ in pairs[:100]] + [t for _, t in pairs[100:200]]


@pytest.fixture(scope="session")
def marian_dir(tmp_path_factory, pairs) -> Path:
    pytest.importorskip("transformers", reason="transformers is not installed (pip install 'any2seq[hf]')")
    return build_tiny_marian(tmp_path_factory.mktemp("hf") / "tiny-marian", pairs)


@pytest.fixture(scope="session")
def hf_marian(marian_dir):
    from transformers import MarianMTModel, MarianTokenizer

    return MarianMTModel.from_pretrained(marian_dir).eval(), MarianTokenizer.from_pretrained(marian_dir)


@pytest.fixture(scope="session")
def imported(marian_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "model"
    assert main(["import-hf", str(marian_dir), "--out", str(out)]) == 0
    return out
