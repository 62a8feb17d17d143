"""Text generation from concepts (CommonGen-style; Lin et al., 2020): a caption's content words,
sorted, are the input; the caption is the output. Data: Multi30k's English side."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from ..config import ConceptDataConfig, Config
from ..data import plain_or_gz, read_lines
from ..errors import UserError
from ..metrics import bleu_chrf
from ..registry import TaskPart
from .base import JOINT, TextOutputTask, Tokenizers, check_split, token_items, train_text_tokenizer
from .translation import read_text_inputs

# Function words never count as concepts (a short closed-class list; content words remain).
STOPWORDS = frozenset("""
a an the and or but nor of in on at to for from by with without into onto over under up down out off
near next through across along around behind between above below while as is are was were be been
being am has have had do does did this that these those there here it its they them their he him his
she her hers we us our you your i me my some any each one two three another other who whom whose which
what where when while very too also just not no so than then such all both few more most several
""".split())
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def concepts(caption: str) -> list[str]:
    """The caption's content words: lower-cased, stop words and duplicates removed, sorted."""
    return sorted({w for w in _WORD.findall(caption.lower()) if w not in STOPWORDS and len(w) > 1})


def covered(concept_list: str, output: str) -> int:
    """How many of the space-separated concepts appear as words in the output."""
    words = set(_WORD.findall(output.lower()))
    return sum(w in words for w in concept_list.split())


def coverage(inputs: list[str], outputs: list[str]) -> float:
    """Percent of input concepts that appear (as words) in the output."""
    hit = sum(covered(src, out) for src, out in zip(inputs, outputs))
    return 100.0 * hit / max(sum(len(src.split()) for src in inputs), 1)


def distinct_n(outputs: list[str], n: int = 2) -> float:
    """Percent of distinct n-grams among all n-grams of the outputs (Li et al., 2016)."""
    grams = [tuple(words[i: i + n]) for out in outputs for words in [out.lower().split()]
             for i in range(len(words) - n + 1)]
    return 100.0 * len(set(grams)) / max(len(grams), 1)


class TextGeneration(TextOutputTask):
    name = "text_generation"

    def _path(self, cfg: Config, split: str) -> Path:
        data = cfg.data
        name = {"train": data.train, "valid": data.valid, "test": data.test}[check_split(split)]
        return plain_or_gz(Path(data.root) / f"{name}.{data.lang}", f"data.{split}", data.root)

    def check_data(self, cfg):
        for split in ("train", "valid"):
            self._path(cfg, split)

    def examples(self, cfg, split):
        captions = [c.strip() for c in read_lines(self._path(cfg, split))]
        if cfg.data.max_examples:
            captions = captions[: cfg.data.max_examples]
        pairs = [(" ".join(concepts(c)), c) for c in captions]
        pairs = [(src, tgt) for src, tgt in pairs if src]  # a caption of stop words only has no concepts
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def prepare(self, cfg, run_dir, reuse):
        if reuse:
            return self.load_tokenizers(cfg, run_dir)
        sources, targets = self.examples(cfg, "train")
        shared = train_text_tokenizer(cfg, sources + targets, Path(run_dir) / JOINT)  # one language: one model
        return Tokenizers(shared, shared)

    def load_tokenizers(self, cfg, run_dir):
        return Tokenizers.load(run_dir, joint=True)

    def source_items(self, cfg, toks, sources):
        return token_items(toks.src, sources)

    def read_inputs(self, cfg, inputs):
        """Concepts may be given in any order and case; they are normalised as in training."""
        return [" ".join(sorted({w.lower() for w in text.split()})) for text in read_text_inputs(inputs)]

    def score(self, hyps, refs):
        scores = bleu_chrf(hyps, refs)
        return {"bleu": scores["bleu"], "coverage": coverage([" ".join(concepts(r)) for r in refs], hyps),
                "distinct_2": distinct_n(hyps, 2), "signature": scores["signature"]}

    def outputs(self, model, toks, cfg, sources, opts, device="cpu", progress=False, src=None):
        """With ``data.rerank`` and beam search, the whole beam is kept and ordered by concepts covered,
        then by score (a stable sort)."""
        wanted = opts.n_best
        if cfg.data.rerank and not opts.sample and opts.beam > 1:
            opts = dataclasses.replace(opts, n_best=opts.beam)
        ranked = super().outputs(model, toks, cfg, sources, opts, device, progress, src)
        if cfg.data.rerank:
            for source, outputs in zip(sources, ranked):
                outputs.sort(key=lambda o: -covered(source, o["text"]))
        return [outputs[:wanted] for outputs in ranked]

    def card(self, cfg, batches):
        return {"data": {"root": cfg.data.root, "lang": cfg.data.lang, "pairs": int(len(batches.kept))}}


TASK = TaskPart("text_generation", ConceptDataConfig, ("bleu", "coverage", "loss"), TextGeneration)
