"""A frames decoder that moves pixels instead of painting them: each next frame is the previous frame
shifted by a few predicted kernels and composited by predicted masks, with freshly drawn pixels only
where the masks ask for them (CDNA, Finn et al., 2016, "Unsupervised Learning for Physical Interaction
through Video Prediction").

Why: a decoder that regresses pixels with MSE learns the mean of the futures it cannot tell apart,
and a moving digit becomes a grey blob after a frame or two. Moving a sharp frame keeps it sharp:
when a kernel is one-hot the digit is copied exactly, only displaced.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config_checks import require, sizes
from ..errors import UserError
from ..registry import DecoderPart, Sizes
from .frames import FramesDecoder, FramesDecoderConfig


def shift_frames(frames: Tensor, kernels: Tensor) -> Tensor:
    """frames (B, T, C, H, W), kernels (B, T, K, k, k) summing to 1 -> (B, T, K, C, H, W): each
    frame convolved with each of its K kernels (zero outside the frame: the background is black).

    Kernel entry (i, j) moves ink by (i - k//2, j - k//2) pixels (down, right): a one-hot kernel at
    (k//2 + 1, k//2) moves every pixel one row down.
    """
    B, T, C, H, W = frames.shape
    K, k = kernels.shape[2], kernels.shape[-1]
    # conv2d correlates; flipping the kernel makes entry (i, j) a move by (i - k//2, j - k//2)
    weight = kernels.flip(-1, -2)[:, :, None].expand(B, T, C, K, k, k).reshape(B * T * C * K, 1, k, k)
    out = F.conv2d(frames.reshape(1, B * T * C, H, W), weight.to(frames.dtype), padding=k // 2, groups=B * T * C)
    return out.reshape(B, T, C, K, H, W).transpose(2, 3)


class WarpDecoder(FramesDecoder):
    """``FramesDecoder``'s Transformer over tiles, with an output head that predicts, per frame, K
    motion kernels (from the mean of the frame's tile states) and per pixel a softmax over K + 1
    sources: the fed frame moved by kernel 1..K, or pixels drawn by ``proj`` (what the pixel decoder
    outputs). The fed frame is the true previous frame in teacher forcing and the decoder's own last
    frame in rollout. Output stays in [0, 1]: a convex mix of values in [0, 1].
    """

    def __init__(self, channels: int, height: int, width: int, kernels: int, kernel_size: int, **transformer):
        super().__init__(channels, height, width, **transformer)
        d_model, p = self.norm.normalized_shape[0], self.patch
        self.kernels, self.kernel_size = kernels, kernel_size
        self.motion = nn.Linear(d_model, kernels * kernel_size * kernel_size)
        self.masks = nn.Linear(d_model, (kernels + 1) * p * p)

    def tiles_to_maps(self, tiles: Tensor, maps: int) -> Tensor:
        """(B, T*N, maps*p*p) -> (B, T, maps, H, W): per-tile outputs laid out as full-frame maps."""
        B = tiles.size(0)
        (_, H, W), (gh, gw), p = self.shape, self.grid, self.patch
        x = tiles.reshape(B, -1, gh, gw, maps, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        return x.reshape(B, -1, maps, H, W)

    def forward(self, X: Tensor, state):
        h, state = self.hidden(X, state)  # (B, T*N, D)
        B, T = X.shape[:2]
        k = self.kernel_size
        pooled = h.reshape(B, T, self.per_frame, -1).mean(2)  # (B, T, D)
        kernels = self.motion(pooled).float().reshape(B, T, self.kernels, k * k).softmax(-1)
        moved = shift_frames(X.float(), kernels.reshape(B, T, self.kernels, k, k))  # (B, T, K, C, H, W)
        drawn = self.from_tiles(torch.sigmoid(self.proj(h).float()))  # (B, T, C, H, W)
        mix = self.tiles_to_maps(self.masks(h).float(), self.kernels + 1).softmax(2)[:, :, :, None]  # (B,T,K+1,1,H,W)
        frames = (mix[:, :, :-1] * moved).sum(2) + mix[:, :, -1] * drawn
        return frames.to(h.dtype), state


@dataclass(frozen=True)
class WarpDecoderConfig(FramesDecoderConfig):
    """The frames decoder's keys, and how the previous frame may move."""
    kind: Literal["warp"] = "warp"
    kernels: int = 2  # motions per frame (one per object that moves its own way)
    kernel_size: int = 7  # the largest move is kernel_size // 2 pixels a frame on each axis

    def check(self):
        super().check()
        sizes(self, "kernels", high=64)
        sizes(self, "kernel_size", high=63)
        require(self.kernel_size % 2 == 1, "kernel_size", f"must be odd (a kernel has a centre), got {self.kernel_size}")


def build(cfg: WarpDecoderConfig, dims: Sizes) -> WarpDecoder:
    channels, height, width = dims.frame_shape
    try:
        return WarpDecoder(channels, height, width, cfg.kernels, cfg.kernel_size, d_model=cfg.d_model,
                           layers=cfg.layers, heads=cfg.heads, ff=cfg.ff, dropout=cfg.dropout,
                           memory_dim=dims.memory_dim, patch=cfg.patch)
    except ValueError as e:
        raise UserError(f"model.decoder.patch: {e}") from None


WARP = DecoderPart(WarpDecoderConfig, build, frames=True)
