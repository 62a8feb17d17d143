"""Video encoder: the image front end on every frame, then Transformer layers over all frames' grid
cells with 2-D positions and a time position (factorised space-time embedding, as in ViViT,
Arnab et al., 2021, applied to CNN features)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..interfaces import Encoder, Memory, lengths_to_mask
from ..nn.embedding import sinusoids
from ..nn.transformer import EncoderLayer
from ..registry import EncoderPart, Sizes
from .image import ConvFrontEnd, ImageEncoderConfig, positions_2d


class VideoEncoder(Encoder):
    """(B, F, C, H, W) frames in [0, 1], lengths in frames -> Memory over F*H'*W' cells (B, F*H'*W', D)."""

    def __init__(self, channels: int, width: int, stages: int, blocks: int, d_model: int, layers: int,
                 heads: int, ff: int, dropout: float):
        super().__init__()
        self.front = ConvFrontEnd(channels, width, stages, blocks, d_model=d_model)
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, ff, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.out_dim = d_model

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return self.front.grid(height, width)

    def forward(self, src: Tensor, src_lengths: Tensor) -> Memory:
        B, F = src.shape[:2]
        features = self.front(src.flatten(0, 1))  # (B*F, D, H', W'): frames are folded into the batch
        _, D, H, W = features.shape
        cells = features.flatten(2).transpose(1, 2).reshape(B, F, H * W, D)
        time = sinusoids(F, D).to(src.device)[None, :, None]  # (1, F, 1, D)
        x = (cells + positions_2d(H, W, D, src.device) + time).flatten(1, 2)  # (B, F*H'W', D)
        frames = lengths_to_mask(src_lengths, F) if src_lengths is not None else torch.ones(
            B, F, dtype=torch.bool, device=src.device)
        mask = frames[:, :, None].expand(B, F, H * W).flatten(1)  # a padded frame's cells are masked
        for layer in self.layers:
            x = layer(x, mask)
        return Memory(self.norm(x), mask)


@dataclass(frozen=True)
class VideoEncoderConfig(ImageEncoderConfig):
    """The image front end on every frame, then ``layers`` Transformer layers over all frames' cells."""
    kind: Literal["video"] = "video"
    layers: int = 2


def build(cfg: VideoEncoderConfig, dims: Sizes) -> VideoEncoder:
    return VideoEncoder(cfg.channels, cfg.width, cfg.stages, cfg.blocks, d_model=cfg.d_model, layers=cfg.layers,
                        heads=cfg.heads, ff=cfg.ff, dropout=cfg.dropout)


VIDEO = EncoderPart(VideoEncoderConfig, build)
