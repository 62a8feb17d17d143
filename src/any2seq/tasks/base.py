"""What every task provides, and the shared machinery of tasks whose examples fit in memory.

A task turns its data into ``Items`` (sources and targets of any modality), builds the model its
config describes, scores outputs with its field's metrics, and reads user inputs for ``predict``.
The training loop, search and checkpoints never see which task they serve.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..config import Config
from ..data import BatchStream, Items, Tokenizer, collate_items, make_batches, train_tokenizer
from ..data.batching import pad_items
from ..decoding import SearchOptions, decode_items
from ..errors import UserError
from ..models import build_model

JOINT, SRC, TGT = "spm.model", "spm.src.model", "spm.tgt.model"


@dataclass
class Tokenizers:
    """The task's sentencepiece models: ``src`` for text input, ``tgt`` for text output (or None)."""

    src: Optional[Tokenizer] = None
    tgt: Optional[Tokenizer] = None

    @staticmethod
    def load(run_dir: Path, joint: bool, src: bool = True, tgt: bool = True) -> "Tokenizers":
        """The model(s) the config says a run has (files of an earlier, failed attempt are ignored)."""
        run_dir = Path(run_dir)
        if joint and src and tgt:
            shared = Tokenizer.load(run_dir / JOINT)
            return Tokenizers(shared, shared)
        return Tokenizers(Tokenizer.load(run_dir / SRC) if src else None, Tokenizer.load(run_dir / TGT) if tgt else None)


def train_text_tokenizer(cfg: Config, texts: Sequence[str], path: Path) -> Tokenizer:
    """A sentencepiece model trained on in-memory texts (written to a temporary file first)."""
    tok = cfg.tokenizer
    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "texts.txt"
        lines.write_text("".join(t.replace("\n", " ") + "\n" for t in texts), encoding="utf-8")
        return train_tokenizer([lines], path, tok.vocab_size, tok.kind, tok.character_coverage, seed=cfg.train.seed)


class Task:
    """The interface: one instance per task in ``tasks.TASKS``."""

    name = ""
    input_kind = "text"  # text | image | audio | video
    output_kind = "text"  # text | frames

    def check_data(self, cfg: Config) -> None:
        """Fail early, naming the file or key, before a run directory is written."""

    def prepare(self, cfg: Config, run_dir: Path, reuse: bool) -> Tokenizers:
        """Train the tokenizers a run needs into ``run_dir`` (or, with ``reuse``, load them)."""
        raise NotImplementedError

    def load_tokenizers(self, cfg: Config, run_dir: Path) -> Tokenizers:
        raise NotImplementedError

    def build_model(self, cfg: Config, toks: Tokenizers, label_smoothing: float = 0.0):
        raise NotImplementedError

    def training_batches(self, cfg: Config, toks: Tokenizers, position=(0, 0)) -> BatchStream:
        raise NotImplementedError

    def make_validate(self, model, toks: Tokenizers, cfg: Config, device, decode: bool) -> Callable[[], dict]:
        raise NotImplementedError

    def evaluate(self, model, toks: Tokenizers, cfg: Config, split: str, opts: SearchOptions, device="cpu",
                 progress: bool = False) -> tuple[dict, list]:
        """The task's metrics on a split, and the outputs."""
        raise NotImplementedError

    def read_inputs(self, cfg: Config, inputs: list) -> list:
        """User inputs (strings, file paths or uploaded bytes) -> model inputs; bad ones raise UserError."""
        raise NotImplementedError

    def predict(self, model, toks: Tokenizers, cfg: Config, inputs: list, opts: SearchOptions, device="cpu",
                progress: bool = False) -> list[dict]:
        raise NotImplementedError

    def card(self, cfg: Config, batches: BatchStream) -> dict:
        """What the model card records about the training data."""
        return {"examples": int(len(batches.kept))}


def text_outputs(toks, n_best) -> list[dict]:
    """A source's n-best hypotheses as ``predict`` answers them: [{"text", "score"}, ...], best first."""
    texts = toks.tgt.decode([h.tokens for h in n_best])
    return [{"text": text, "score": h.normalized} for text, h in zip(texts, n_best)]


class TextOutputTask(Task):
    """Tasks with a text target and in-memory examples: captioning, speech, text generation.

    A subclass says how to get a split (``examples``) and how its sources become ``Items``
    (``source_items``); training, validation, decoding and scoring are shared.
    """

    def examples(self, cfg: Config, split: str) -> tuple[list, list[str]]:
        """(sources, target texts) of a split: "train", "valid" or "test" (or a file name, where supported)."""
        raise NotImplementedError

    def source_items(self, cfg: Config, toks: Tokenizers, sources: list) -> Items:
        raise NotImplementedError

    def score(self, hyps: list[str], refs: list[str]) -> dict:
        raise NotImplementedError

    def prepare(self, cfg, run_dir, reuse):
        if reuse:
            return self.load_tokenizers(cfg, run_dir)
        _, targets = self.examples(cfg, "train")
        return Tokenizers(None, train_text_tokenizer(cfg, targets, Path(run_dir) / TGT))

    def load_tokenizers(self, cfg, run_dir):
        return Tokenizers.load(run_dir, joint=False, src=False, tgt=True)

    def build_model(self, cfg, toks, label_smoothing=0.0):
        src_vocab = toks.src.vocab_size if toks.src is not None else 0
        return build_model(cfg.model, src_vocab, toks.tgt.vocab_size, label_smoothing)

    def training_batches(self, cfg, toks, position=(0, 0)):
        sources, targets = self.examples(cfg, "train")
        tgt = toks.tgt.encode(targets)
        return BatchStream(self.source_items(cfg, toks, sources), Items(tgt, [len(t) for t in tgt], "tokens"),
                           cfg.train.batch_tokens, cfg.train.seed, tuple(position), pad_to=cfg.train.pad_to)

    def make_validate(self, model, toks, cfg, device, decode):
        sources, refs = self.examples(cfg, "valid")
        src = self.source_items(cfg, toks, sources)
        tgt_ids = toks.tgt.encode(refs)
        tgt = Items(tgt_ids, [len(t) for t in tgt_ids], "tokens")
        batches = make_batches(src.lengths, tgt.lengths, cfg.train.batch_tokens, seed=0, epoch=0, shuffle=False)

        def validate() -> dict:
            total, count = 0.0, 0
            for indices in batches:
                loss, n = model.loss(collate_items(src, tgt, indices).to(device))
                total, count = total + float(loss), count + n
            metrics = {"loss": total / max(count, 1)}
            if decode:
                opts = SearchOptions(beam=1, max_len_a=cfg.decode.max_len_a, max_len_b=cfg.decode.max_len_b)
                metrics.update(self.score(self.decode(model, toks, src, opts, cfg, device), refs))
            return metrics

        return validate

    def decode(self, model, toks, src: Items, opts, cfg, device, progress=False) -> list[str]:
        hyps = decode_items(model, src, opts, device=device, progress=progress, **cfg.decode.batching())
        return [toks.tgt.decode([n_best[0].tokens])[0] for n_best in hyps]

    def evaluate(self, model, toks, cfg, split, opts, device="cpu", progress=False):
        sources, refs = self.examples(cfg, split)
        hyps = self.decode(model, toks, self.source_items(cfg, toks, sources), opts, cfg, device, progress)
        return self.score(hyps, refs), hyps

    def predict(self, model, toks, cfg, inputs, opts, device="cpu", progress=False):
        src = self.source_items(cfg, toks, inputs)
        hyps = decode_items(model, src, opts, device=device, progress=progress, **cfg.decode.batching())
        return [{"outputs": text_outputs(toks, n_best)} for n_best in hyps]


class FramesOutputTask(Task):
    """Tasks with frame targets (video prediction, text-to-video): regression loss, rollout, MSE/SSIM."""

    output_kind = "frames"

    def examples(self, cfg: Config, split: str) -> tuple[list, np.ndarray]:
        """(sources, target frames (N, T, C, H, W)) of a split."""
        raise NotImplementedError

    def source_items(self, cfg: Config, toks: Tokenizers, sources: list) -> Items:
        raise NotImplementedError

    def frame_shape(self, cfg: Config) -> tuple[int, int, int]:
        return (1, cfg.data.canvas, cfg.data.canvas)

    def n_frames(self, cfg: Config) -> int:
        return cfg.data.frames_out

    def score(self, pred: np.ndarray, true: np.ndarray, sources: list, cfg: Config, split: str) -> dict:
        """Metrics of ``pred`` against the ``split``'s true frames (both (N, T, C, H, W)) and sources."""
        raise NotImplementedError

    def build_model(self, cfg, toks, label_smoothing=0.0):
        src_vocab = toks.src.vocab_size if toks.src is not None else 0
        return build_model(cfg.model, src_vocab, 0, frame_shape=self.frame_shape(cfg))

    def training_batches(self, cfg, toks, position=(0, 0)):
        sources, frames = self.examples(cfg, "train")
        return BatchStream(self.source_items(cfg, toks, sources), Items(frames, [len(f) for f in frames], "sequence"),
                           cfg.train.batch_tokens, cfg.train.seed, tuple(position))

    def rollout(self, model, src: Items, cfg, device, progress=False) -> np.ndarray:
        """Generated frames (N, T, C, H, W) for every source, in input order."""
        model.eval()
        out = np.zeros((len(src), self.n_frames(cfg), *self.frame_shape(cfg)), dtype=np.float32)
        order = np.argsort(-src.lengths, kind="stable")
        rows = max(1, cfg.decode.batch_tokens // max(int(src.lengths.max(initial=1)) + self.n_frames(cfg), 1))
        for start in range(0, len(order), rows):
            chunk = order[start: start + rows]
            x, lengths = pad_items(src, chunk, eos=False)
            with torch.inference_mode():
                frames = model.rollout(x.to(device), None if lengths is None else lengths.to(device),
                                       self.n_frames(cfg), self.frame_shape(cfg))
            out[chunk] = frames.cpu().numpy()
        return out

    def make_validate(self, model, toks, cfg, device, decode):
        sources, frames = self.examples(cfg, "valid")
        src = self.source_items(cfg, toks, sources)
        tgt = Items(frames, [len(f) for f in frames], "sequence")
        batches = make_batches(src.lengths, tgt.lengths, cfg.train.batch_tokens, seed=0, epoch=0, shuffle=False)

        def validate() -> dict:
            total, count = 0.0, 0
            for indices in batches:
                loss, n = model.loss(collate_items(src, tgt, indices).to(device))
                total, count = total + float(loss), count + n
            metrics = {"loss": total / max(count, 1)}
            if decode:
                metrics.update(self.score(self.rollout(model, src, cfg, device), frames, sources, cfg, "valid"))
            return metrics

        return validate

    def evaluate(self, model, toks, cfg, split, opts, device="cpu", progress=False):
        sources, frames = self.examples(cfg, split)
        pred = self.rollout(model, self.source_items(cfg, toks, sources), cfg, device, progress)
        return self.score(pred, frames, sources, cfg, split), pred

    def predict(self, model, toks, cfg, inputs, opts, device="cpu", progress=False):
        pred = self.rollout(model, self.source_items(cfg, toks, inputs), cfg, device, progress)
        return [{"frames": p} for p in pred]


def check_split(split: str, key: str = "--split") -> str:
    if split not in ("train", "valid", "test"):
        raise UserError(f"{key}: {split!r} is not one of train, valid, test")
    return split
