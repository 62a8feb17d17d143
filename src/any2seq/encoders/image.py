"""Image encoder: a small residual CNN (He et al., 2016) whose feature grid, with 2-D sinusoidal
positions (as in DETR, Carion et al., 2020), is the memory; optionally Transformer layers on top."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config_checks import MAX_LAYERS, MAX_WIDTH, attention_sizes, require, sizes
from ..interfaces import Encoder, EncoderConfig, Memory
from ..nn.embedding import sinusoids
from ..nn.transformer import EncoderLayer
from ..registry import EncoderPart, Sizes

GROUPS = 8  # GroupNorm, not BatchNorm: an image's encoding never depends on the rest of its batch


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(GROUPS, channels), channels)


class StridedPointwise(nn.Conv2d):
    """A 1x1 convolution with a stride, computed as subsampling then a 1x1 convolution: the same
    numbers and parameters, but not oneDNN's strided 1x1 kernel, whose backward on channels-last
    input (images are stored so) corrupts the heap on AVX2-only CPUs (torch 2.13, 4 -> 8 channels)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x[:, :, :: self.stride[0], :: self.stride[1]], self.weight)


class ResidualBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = _norm(c_out)
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out
                     else nn.Sequential(StridedPointwise(c_in, c_out, stride), _norm(c_out)))

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(y)) + self.skip(x))


class ConvFrontEnd(nn.Module):
    """(N, C, H, W) images -> (N, d_model, H', W') features; every stage after the first halves H and W."""

    def __init__(self, channels: int, width: int, stages: int, blocks: int, d_model: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1, bias=False), _norm(width), nn.ReLU())
        layers, c_in = [], width
        for stage in range(stages):
            c_out = width * 2 ** stage
            for block in range(blocks):
                layers.append(ResidualBlock(c_in, c_out, 2 if stage > 0 and block == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*layers)
        self.proj = nn.Conv2d(c_in, d_model, 1)
        self.stages = stages

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """The feature grid's size for an input of ``height`` x ``width``."""
        for _ in range(self.stages - 1):
            height, width = (height + 1) // 2, (width + 1) // 2
        return height, width

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(self.blocks(self.stem(images)))


def positions_2d(height: int, width: int, d_model: int, device) -> Tensor:
    """(H*W, D) positions: the first half of the channels encodes the row, the second the column."""
    half = d_model // 2
    rows = sinusoids(height, half).to(device)  # (H, D/2)
    cols = sinusoids(width, d_model - half).to(device)  # (W, D - D/2)
    return torch.cat([rows[:, None].expand(height, width, half),
                      cols[None, :].expand(height, width, d_model - half)], dim=-1).flatten(0, 1)


class ImageEncoder(Encoder):
    """(B, C, H, W) images in [0, 1] -> Memory over the H'*W' grid cells (B, H'*W', D)."""

    def __init__(self, channels: int, width: int, stages: int, blocks: int, d_model: int, layers: int,
                 heads: int, ff: int, dropout: float):
        super().__init__()
        self.front = ConvFrontEnd(channels, width, stages, blocks, d_model=d_model)
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, ff, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.out_dim = d_model

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return self.front.grid(height, width)

    def forward(self, src: Tensor, src_lengths=None) -> Memory:
        features = self.front(src)  # (B, D, H', W')
        B, D, H, W = features.shape
        x = features.flatten(2).transpose(1, 2) + positions_2d(H, W, D, src.device)  # (B, H'W', D)
        mask = torch.ones(B, H * W, dtype=torch.bool, device=src.device)
        for layer in self.layers:
            x = layer(x, mask)
        return Memory(self.norm(x), mask)


@dataclass(frozen=True)
class ImageEncoderConfig(EncoderConfig):
    """A residual CNN whose feature grid is the memory (B, H'*W', D), optionally with Transformer layers on top."""
    kind: Literal["image"] = "image"
    channels: int = 1  # input channels: 1 grey, 3 RGB
    width: int = 32  # channels of the first stage; each later stage doubles them and halves H and W
    stages: int = 3
    blocks: int = 1  # residual blocks per stage
    d_model: int = 256
    layers: int = 0  # Transformer layers over the grid
    heads: int = 4
    ff: int = 1024
    dropout: float = 0.1

    def input_channels(self) -> int:
        return self.channels

    def check(self):
        require(self.channels in (1, 3), "channels", f"must be 1 (grey) or 3 (RGB), got {self.channels}")
        attention_sizes(self, min_layers=0)
        sizes(self, "width")
        sizes(self, "stages", high=16)  # each halves the image
        sizes(self, "blocks", high=MAX_LAYERS)
        require(self.width << (self.stages - 1) <= MAX_WIDTH, "width",
                f"{self.width} doubled over {self.stages} stages is more than {MAX_WIDTH}")


def build(cfg: ImageEncoderConfig, dims: Sizes) -> ImageEncoder:
    return ImageEncoder(cfg.channels, cfg.width, cfg.stages, cfg.blocks, d_model=cfg.d_model, layers=cfg.layers,
                        heads=cfg.heads, ff=cfg.ff, dropout=cfg.dropout)


IMAGE = EncoderPart(ImageEncoderConfig, build)
