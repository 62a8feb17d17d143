"""What one request may ask of the server; anything beyond is refused with a 4xx and a one-line reason."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 2_000_000  # the whole request body, uploads included
    max_inputs: int = 64  # inputs (lines or files) per request
    max_len: int = 512  # the largest max_len (output tokens) a request may ask for
    max_input_chars: int = 2000  # characters per text input
    timeout_s: float = 30.0  # a request waiting longer than this for its outputs is answered 408
    max_beam: int = 16  # beam size and n-best list length

    def __post_init__(self):
        for name in ("max_body_bytes", "max_inputs", "max_len", "max_input_chars", "timeout_s", "max_beam"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)}")
