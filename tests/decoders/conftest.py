"""Helpers the decoder tests share."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture
def sampled():
    """sampled(dec, X, state, seed): the frames a decoder draws for X from its sampling state with that seed."""

    def frames(dec, X, state, seed: int) -> torch.Tensor:
        with torch.no_grad():
            return dec(X, dec.sampling(state, torch.Generator().manual_seed(seed)))[0]

    return frames
