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
from ..errors import UserError
from ..inference import SearchOptions, batch_generator, decode_batches, decode_items, run_batches
from ..seq2seq import build_model, learned_positions, output_limit, within_positions

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
    """The interface: one instance per task in ``tasks.TASKS``.

    A task's data is a split of (sources, targets) (``examples``); ``source_items`` and
    ``target_items`` make them ``Items``, and ``assess`` decodes a split and scores it. On these,
    the validation loop (``make_validate``) and ``evaluate`` are the same for every task.
    """

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

    def examples(self, cfg: Config, split: str) -> tuple[list, Sequence]:
        """(sources, targets) of a split: "train", "valid" or "test" (or a task's own, where supported)."""
        raise NotImplementedError

    def source_items(self, cfg: Config, toks: Tokenizers, sources: list) -> Items:
        raise NotImplementedError

    def target_items(self, cfg: Config, toks: Tokenizers, targets: Sequence) -> Items:
        raise NotImplementedError

    def assess(self, model, toks: Tokenizers, cfg: Config, split: str, sources: list, src: Items, targets,
               opts: SearchOptions, device="cpu", progress: bool = False) -> tuple[dict, list]:
        """Decode a split's sources (``src``: their items) and score the outputs: (metrics, outputs)."""
        raise NotImplementedError

    def make_validate(self, model, toks: Tokenizers, cfg: Config, device, decode: bool) -> Callable[[], dict]:
        """A validation callable for the training loop: the loss per target token (or frame) on the
        valid split and, with ``decode``, the task's metrics of greedy outputs."""
        sources, targets = self.examples(cfg, "valid")
        src, tgt = self.source_items(cfg, toks, sources), self.target_items(cfg, toks, targets)
        keep = np.flatnonzero(fits_positions(cfg, src, tgt) & (src.lengths > 0))  # an empty source: no loss
        batches = [keep[b] for b in make_batches(src.lengths[keep], tgt.lengths[keep], cfg.train.batch_tokens,
                                                 seed=0, epoch=0, shuffle=False)]
        # learned position tables end: greedy validation cuts sources and outputs to them, as api.py does
        greedy = SearchOptions(beam=1, max_len_a=cfg.decode.max_len_a, max_len_b=cfg.decode.max_len_b,
                               max_len=output_limit(cfg, SearchOptions.max_len))
        cfg = within_positions(cfg)

        def validate() -> dict:
            total, count = 0.0, 0
            for indices in batches:
                loss, n = model.loss(collate_items(src, tgt, indices).to(device))
                total, count = total + float(loss), count + n
            metrics = {"loss": total / max(count, 1)}
            if decode:
                metrics.update(self.assess(model, toks, cfg, "valid", sources, src, targets, greedy, device)[0])
            return metrics

        return validate

    def evaluate(self, model, toks: Tokenizers, cfg: Config, split: str, opts: SearchOptions, device="cpu",
                 progress: bool = False) -> tuple[dict, list]:
        """The task's metrics on a split, and the outputs."""
        sources, targets = self.examples(cfg, split)
        return self.assess(model, toks, cfg, split, sources, self.source_items(cfg, toks, sources), targets,
                           opts, device, progress)

    def read_inputs(self, cfg: Config, inputs: list) -> list:
        """User inputs (strings, file paths or uploaded bytes) -> model inputs; bad ones raise UserError."""
        raise NotImplementedError

    def predict(self, model, toks: Tokenizers, cfg: Config, inputs: list, opts: SearchOptions, device="cpu",
                progress: bool = False) -> list[dict]:
        raise NotImplementedError

    def card(self, cfg: Config, batches: BatchStream) -> dict:
        """What the model card records about the training data."""
        return {"examples": int(len(batches.kept))}


def fits_positions(cfg: Config, src: Items, tgt: Items) -> np.ndarray:
    """(N,) which pairs fit the model's learned position tables (all of them, without learned
    positions): the validation loss leaves out those that do not, as training never sees them."""
    fits = np.ones(len(src), dtype=bool)
    for items, positions, extra in ((src, learned_positions(cfg.model.encoder), 0),
                                    (tgt, learned_positions(cfg.model.decoder), 1)):  # targets gain an EOS
        if positions and items.kind == "tokens":
            fits &= items.lengths + extra <= positions
    return fits


def token_items(tokenizer: Tokenizer, texts: Sequence[str]) -> Items:
    """Texts as subword ids, batched by their token counts."""
    ids = tokenizer.encode(list(texts))
    return Items(ids, [len(i) for i in ids], "tokens")


def text_outputs(toks, n_best) -> list[dict]:
    """A source's n-best hypotheses as ``predict`` answers them: [{"text", "score"}, ...], best first."""
    texts = toks.tgt.decode([h.tokens for h in n_best])
    return [{"text": text, "score": h.normalized} for text, h in zip(texts, n_best)]


class TextOutputTask(Task):
    """Tasks with a text target: translation, captioning, speech, text generation.

    A subclass says how to get a split (``examples``), how its sources become ``Items``
    (``source_items``) and how outputs are scored (``score``); training batches and decoding are
    shared, and decoding has one path, ``outputs``, for validation, evaluation and prediction.
    """

    def examples(self, cfg: Config, split: str) -> tuple[list, list[str]]:
        """(sources, target texts) of a split: "train", "valid" or "test" (or a file name, where supported)."""
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

    def target_items(self, cfg, toks, targets):
        return token_items(toks.tgt, targets)

    def training_batches(self, cfg, toks, position=(0, 0)):
        sources, targets = self.examples(cfg, "train")
        return BatchStream(self.source_items(cfg, toks, sources), self.target_items(cfg, toks, targets),
                           cfg.train.batch_tokens, cfg.train.seed, tuple(position), pad_to=cfg.train.pad_to)

    def outputs(self, model, toks, cfg, sources: list, opts: SearchOptions, device="cpu", progress=False,
                src: Optional[Items] = None) -> list[list[dict]]:
        """Each source's n-best outputs ([{"text", "score"}, ...], best first), in input order, batched
        as ``cfg.decode`` says; ``src``: the sources' items, where already made."""
        src = self.source_items(cfg, toks, sources) if src is None else src
        hyps = decode_items(model, src, opts, device=device, progress=progress, **cfg.decode.batching())
        return [text_outputs(toks, n_best) for n_best in hyps]

    def assess(self, model, toks, cfg, split, sources, src, targets, opts, device="cpu", progress=False):
        hyps = [n_best[0]["text"] for n_best in self.outputs(model, toks, cfg, sources, opts, device, progress, src)]
        return self.score(hyps, targets), hyps

    def predict(self, model, toks, cfg, inputs, opts, device="cpu", progress=False):
        return [{"outputs": n_best} for n_best in self.outputs(model, toks, cfg, inputs, opts, device, progress)]


class FramesOutputTask(Task):
    """Tasks with frame targets (video prediction, text-to-video): regression loss, rollout, MSE/SSIM."""

    output_kind = "frames"

    def examples(self, cfg: Config, split: str) -> tuple[list, np.ndarray]:
        """(sources, target frames (N, T, C, H, W)) of a split."""
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

    def target_items(self, cfg, toks, targets):
        return Items(targets, [len(f) for f in targets], "sequence")

    def training_batches(self, cfg, toks, position=(0, 0)):
        sources, frames = self.examples(cfg, "train")
        return BatchStream(self.source_items(cfg, toks, sources), self.target_items(cfg, toks, frames),
                           cfg.train.batch_tokens, cfg.train.seed, tuple(position))

    def rollout(self, model, src: Items, cfg, device, progress=False, seed: int | None = None) -> np.ndarray:
        """Generated frames (N, T, C, H, W) for every source, in input order, in the batches every
        inference path uses; with a ``seed``, sampled (the decoder's ``sampling``), the same frames
        for the same seed however many workers decode them."""
        model.eval()
        n, shape, batching = self.n_frames(cfg), self.frame_shape(cfg), cfg.decode.batching()
        out = np.zeros((len(src), n, *shape), dtype=np.float32)
        # a clip costs its source's positions and the frames it generates
        batches = decode_batches(src.lengths + n, batching["batch_tokens"], batching["batch_size"], beam=1)
        dtype = next(model.parameters()).dtype

        @torch.inference_mode()
        def run(j: int, chunk: list[int]) -> np.ndarray:
            x, lengths = pad_items(src, chunk, eos=False)
            if x.is_floating_point():  # frames in the weights' dtype (bf16 decoding)
                x = x.to(dtype)
            generator = None if seed is None else batch_generator(seed, j, "cpu")
            frames = model.rollout(x.to(device), None if lengths is None else lengths.to(device), n, shape,
                                   generator=generator)
            return frames.float().cpu().numpy()

        for chunk, frames in run_batches(run, batches, batching["workers"], progress):
            out[chunk] = frames
        return out

    def assess(self, model, toks, cfg, split, sources, src, targets, opts, device="cpu", progress=False):
        pred = self.rollout(model, src, cfg, device, progress)
        return self.score(pred, targets, sources, cfg, split), pred

    def predict(self, model, toks, cfg, inputs, opts, device="cpu", progress=False):
        seed = opts.seed if opts.sample else None
        pred = self.rollout(model, self.source_items(cfg, toks, inputs), cfg, device, progress, seed)
        return [{"frames": p} for p in pred]


def check_split(split: str, key: str = "--split") -> str:
    if split not in ("train", "valid", "test"):
        raise UserError(f"{key}: {split!r} is not one of train, valid, test")
    return split
