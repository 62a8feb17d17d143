"""Image captioning (Show and Tell, Vinyals et al., 2015; Show, Attend and Tell, Xu et al., 2015):
scenes of real handwritten digit scans with captions saying what is where, or a COCO-format
caption file of the user's own images."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..config import CaptionDataConfig
from ..data import Items
from ..data.images import digit_scenes, read_coco, read_image
from ..errors import UserError
from ..interfaces import encoder_config
from ..metrics import bleu_chrf
from ..registry import TaskPart
from .base import TextOutputTask, check_split


def exact_match(hyps: list[str], refs: list[str]) -> float:
    """Percent of outputs equal to their reference, ignoring case and surrounding space."""
    return 100.0 * sum(h.strip().lower() == r.strip().lower() for h, r in zip(hyps, refs)) / max(len(refs), 1)


@lru_cache(maxsize=4)
def _scenes(split: str, n: int, seed: int, size: int, max_digits: int):
    scenes = digit_scenes(split, n, seed, canvas=size, max_digits=max_digits)
    return [s[0] for s in scenes], [s[1] for s in scenes]


class Captioning(TextOutputTask):
    name = "captioning"
    input_kind = "image"

    def check_data(self, cfg):
        if cfg.data.source == "coco":
            for split in ("train", "valid"):
                self._coco(cfg, split)

    def _coco(self, cfg, split: str) -> list[tuple[Path, str]]:
        d = cfg.data
        name = {"train": d.train, "valid": d.valid, "test": d.test}[check_split(split)]
        path = Path(d.root) / name
        if not path.is_file():
            raise UserError(f"data.{split}: {path}: no such caption file (data.root is {d.root!r})")
        return read_coco(path, Path(d.root) / d.images)

    def examples(self, cfg, split):
        d = cfg.data
        if d.source == "digits":
            n = {"train": d.n_train, "valid": d.n_valid, "test": d.n_test}[check_split(split)]
            images, captions = _scenes(split, n, d.seed, d.size, d.max_digits)
            return list(images), list(captions)
        pairs = self._coco(cfg, split)
        loaded, channels = {}, encoder_config(cfg.model.encoder).input_channels()  # an image with several captions is read once
        for path, _ in pairs:
            if path not in loaded:
                loaded[path] = read_image(path, channels, d.size)
        return [loaded[p] for p, _ in pairs], [c for _, c in pairs]

    def source_items(self, cfg, toks, sources):
        cells = max(1, (cfg.data.size // 8) ** 2)  # the batching size: about the encoder's grid cells
        return Items(list(sources), [cells] * len(sources), "fixed")

    def score(self, hyps, refs):
        scores = bleu_chrf(hyps, refs)
        return {"bleu": scores["bleu"], "exact": exact_match(hyps, refs), "signature": scores["signature"]}

    def read_inputs(self, cfg, inputs):
        """Image files, their bytes (uploads), or arrays (C, H, W) in [0, 1] of the model's size."""
        channels = encoder_config(cfg.model.encoder).input_channels()
        images, shape = [], (channels, cfg.data.size, cfg.data.size)
        for i, item in enumerate(inputs):
            if isinstance(item, np.ndarray):
                if item.shape != shape or not np.isfinite(item).all():
                    raise UserError(f"input {i + 1}: an image array must be finite, of shape {shape}, "
                                    f"got {item.shape}")
                images.append(np.clip(item, 0, 1).astype(np.float32))
            elif isinstance(item, (bytes, bytearray)):
                images.append(read_image(item, channels, cfg.data.size, name=f"upload {i + 1}"))
            elif isinstance(item, (str, Path)):
                images.append(read_image(item, channels, cfg.data.size))
            else:
                raise UserError(f"input {i + 1}: this captioning model reads images, got {type(item).__name__}")
        return images

    def card(self, cfg, batches):
        d = cfg.data
        source = ("scenes of scikit-learn's digit scans" if d.source == "digits" else f"COCO-format captions in {d.root}")
        return {"data": {"source": source, "examples": int(len(batches.kept)), "size": d.size}}


TASK = TaskPart("captioning", CaptionDataConfig, ("bleu", "exact", "loss"), Captioning)
