"""What one request may ask of the server; anything beyond is refused with a 4xx and a one-line reason."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 2_000_000  # the whole request body, uploads included
    max_inputs: int = 64  # inputs (lines or files) per request
    max_len: int = 512  # the largest max_len (output tokens) a request may ask for
    max_input_chars: int = 2000  # characters per text input
    timeout_s: float = 30.0  # a request (its body, then its outputs) taking longer is answered 408 and stopped
    max_beam: int = 16  # beam size and n-best list length

    def __post_init__(self):
        for name in ("max_body_bytes", "max_inputs", "max_len", "max_input_chars", "timeout_s", "max_beam"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):  # an infinite timeout would let one request hold the server
                raise ValueError(f"Limits.{name} must be positive and finite, got {value}")
