"""The Python API: ``any2seq.load(DIR)`` gives a ``Translator``."""
from __future__ import annotations

from pathlib import Path

from .decoding import SearchOptions
from .modeldir import load_model
from .translation import translate_lines


class Translator:
    """A trained model with its tokenizers, ready to translate lists of strings."""

    def __init__(self, model, toks, cfg, card: dict, device="cpu"):
        self.model, self.toks, self.cfg, self.card, self.device = model, toks, cfg, card, device

    def translate(self, lines: list[str], beam: int | None = None, n_best: int = 1,
                  length_penalty: float | None = None, sample: bool = False, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, max_len: int = 256, batch_tokens: int | None = None,
                  seed: int = 0, progress: bool = False) -> list[str] | list[list[str]]:
        """Translations in input order: one string per line, or lists of ``n_best`` strings."""
        if isinstance(lines, str):
            raise TypeError("translate() takes a list of strings")
        d = self.cfg.decode
        opts = SearchOptions(beam=d.beam if beam is None else beam, n_best=n_best,
                             length_penalty=d.length_penalty if length_penalty is None else length_penalty,
                             sample=sample, temperature=temperature, top_k=top_k, top_p=top_p, max_len=max_len,
                             max_len_a=d.max_len_a, max_len_b=d.max_len_b, seed=seed)
        out = translate_lines(self.model, self.toks, list(lines), opts, batch_tokens or d.batch_tokens,
                              self.device, progress)
        return [o[0] for o in out] if n_best == 1 else out


def load(path, device="cpu") -> Translator:
    model, toks, cfg, card = load_model(Path(path), device)
    return Translator(model, toks, cfg, card, device)
