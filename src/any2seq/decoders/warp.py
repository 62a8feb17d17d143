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
from ..nn.frame_loss import displaced
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


def motion_evidence(X: Tensor, prev: Tensor, patch: int, radius: int) -> Tensor:
    """X (B, T, C, H, W) following ``prev`` (B, 1, C, H, W) -> (B, T, N, (2r+1)^2): per frame and
    patch x patch tile, the correlation of the tile with the frame before it displaced by each
    (dy, dx), |dy|, |dx| <= r, over the tile's ink: a peak at the motion that brought the tile's ink
    there (all zeros where the frame before is blank: the first frame of a clip)."""
    B, T, C, H, W = X.shape
    before = torch.cat([prev.to(X.dtype), X[:, :-1]], 1)
    # a loop of shifted products: F.unfold's all-at-once windows measured slower at a training batch
    shifts = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    products = torch.stack([(X * displaced(before, dy, dx)).sum(2) for dy, dx in shifts], -1)  # (B, T, H, W, S)
    gh, gw = H // patch, W // patch
    tiles = products.reshape(B, T, gh, patch, gw, patch, -1).sum((3, 5)).flatten(2, 3)  # (B, T, N, S)
    ink = X.square().sum(2).reshape(B, T, gh, patch, gw, patch).sum((3, 5)).flatten(2, 3)  # (B, T, N)
    return tiles / (ink[..., None] + 1.0)


def mode(logits: Tensor, dim: int) -> Tensor:
    """One-hot at the most likely entry along ``dim``: at prediction a kernel moves the frame by its
    likeliest motion, so the frame is displaced, never averaged over motions (a blur)."""
    return F.one_hot(logits.argmax(dim), logits.size(dim)).movedim(-1, dim).to(logits.dtype)


def draw(logits: Tensor, generator: torch.Generator) -> Tensor:
    """One-hot at an entry of the last dimension drawn with the softmax's probabilities."""
    probs = logits.softmax(-1).flatten(0, -2)
    picked = torch.multinomial(probs.cpu(), 1, generator=generator).to(logits.device)
    return F.one_hot(picked[:, 0], logits.size(-1)).reshape(logits.shape).to(logits.dtype)


class WarpDecoder(FramesDecoder):
    """``FramesDecoder``'s Transformer over tiles, with an output head that predicts, per frame, K
    motion kernels (from the mean of the frame's tile states) and per pixel a softmax over K + 1
    sources: the fed frame moved by kernel 1..K, or pixels drawn by ``proj`` (what the pixel decoder
    outputs). The fed frame is the true previous frame in teacher forcing and the decoder's own last
    frame in rollout. Output stays in [0, 1]: a convex mix of values in [0, 1].
    """

    def __init__(self, channels: int, height: int, width: int, kernels: int, kernel_size: int, draw: bool = True,
                 **transformer):
        super().__init__(channels, height, width, **transformer)
        d_model, p = self.norm.normalized_shape[0], self.patch
        self.kernels, self.kernel_size = kernels, kernel_size
        self.motion = nn.Linear(d_model, kernels * kernel_size * kernel_size)
        self.masks = nn.Linear(d_model, (kernels + 1) * p * p)
        self.evidence = nn.Linear(kernel_size * kernel_size, d_model)
        self.draw = draw
        with torch.no_grad():  # start as a copy of the fed frame: its MSE is the baseline to beat, and
            # a blur (uniform kernels, mixing in drawn pixels) is where pixel regression gets stuck
            self.motion.bias.view(kernels, kernel_size, kernel_size)[:, kernel_size // 2, kernel_size // 2] += 4.0
            self.masks.bias.view(kernels + 1, p * p)[-1] -= 4.0

    def init_state(self, enc_outputs, *args):
        state = super().init_state(enc_outputs, *args)
        B = state["memory_mask"].size(0)
        return {**state, "prev": state["memory_mask"].new_zeros((B, 1, *self.shape), dtype=torch.float32),
                "generator": None}

    def sampling(self, state, generator: torch.Generator):
        """``state`` for a rollout that draws each motion from its kernel instead of taking the mode:
        different plausible futures, the same ones for the same generator seed."""
        return {**state, "generator": generator}

    def tokens(self, X: Tensor, state) -> Tensor:
        """Tile pixels plus how each tile moved since the frame before it (``motion_evidence``): the
        kernels are read from these tokens, and a motion is hard to infer from pixels alone."""
        evidence = motion_evidence(X.float(), state["prev"], self.patch, self.kernel_size // 2)
        return super().tokens(X, state) + self.evidence(evidence.to(X.dtype)).flatten(1, 2)

    def forward(self, X: Tensor, state):
        h, state = self.hidden(X, state)  # (B, T*N, D)
        state = {**state, "prev": X[:, -1:].float()}
        B, T = X.shape[:2]
        k = self.kernel_size
        pooled = h.reshape(B, T, self.per_frame, -1).mean(2)  # (B, T, D)
        kernels = self.motion(pooled).float().reshape(B, T, self.kernels, k * k)
        masks = self.from_tiles(self.masks(h).float(), self.kernels + 1)  # (B, T, K+1, H, W)
        if not self.draw:  # every pixel comes from the fed frame
            masks = masks[:, :, :-1]
        if self.training:
            kernels = kernels.softmax(-1)
        elif state["generator"] is not None:
            kernels = draw(kernels, state["generator"])
        else:
            kernels = mode(kernels, -1)
        moved = shift_frames(X.float(), kernels.reshape(B, T, self.kernels, k, k))  # (B, T, K, C, H, W)
        # masks soft even at prediction: a pixel torn between two motions is a mix, not a shard
        mix = masks.softmax(2)[:, :, :, None]  # (B, T, K(+1), 1, H, W)
        frames = (mix[:, :, : self.kernels] * moved).sum(2)
        if self.draw:
            frames = frames + mix[:, :, -1] * self.from_tiles(torch.sigmoid(self.proj(h).float()))
        return frames.to(h.dtype), state


@dataclass(frozen=True)
class WarpDecoderConfig(FramesDecoderConfig):
    """The frames decoder's keys, and how the previous frame may move."""
    kind: Literal["warp"] = "warp"
    kernels: int = 2  # motions per frame (one per object that moves its own way)
    kernel_size: int = 7  # the largest move is kernel_size // 2 pixels a frame on each axis
    draw: bool = True  # may pixels be drawn anew (what enters the frame), or only moved from the last frame

    def check(self):
        super().check()
        sizes(self, "kernels", high=64)
        sizes(self, "kernel_size", high=63)
        require(self.kernel_size % 2 == 1, "kernel_size", f"must be odd (a kernel has a centre), got {self.kernel_size}")


def build_moving(decoder: type, cfg: WarpDecoderConfig, dims: Sizes, **head) -> WarpDecoder:
    """A decoder that moves frames (this one or a subclass), its output ``head``'s keys by name."""
    channels, height, width = dims.frame_shape
    try:
        return decoder(channels, height, width, kernels=cfg.kernels, kernel_size=cfg.kernel_size, **head,
                       d_model=cfg.d_model, layers=cfg.layers, heads=cfg.heads, ff=cfg.ff, dropout=cfg.dropout,
                       memory_dim=dims.memory_dim, patch=cfg.patch)
    except ValueError as e:
        raise UserError(f"model.decoder.patch: {e}") from None


def build(cfg: WarpDecoderConfig, dims: Sizes) -> WarpDecoder:
    return build_moving(WarpDecoder, cfg, dims, draw=cfg.draw)


WARP = DecoderPart(WarpDecoderConfig, build, frames=True)
