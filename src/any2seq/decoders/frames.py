"""Continuous frame decoder: a Transformer over ViT patch tokens (Dosovitskiy et al., 2021) that is
causal frame by frame, as in video Transformers such as VideoGPT (Yan et al., 2021), with pixels out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..config_checks import sizes
from ..errors import UserError
from ..interfaces import Decoder, as_memory
from ..nn.dropout import Dropout
from ..nn.embedding import sinusoids
from ..nn.kv_cache import KVCache
from ..nn.transformer import DecoderLayer, LayerStackConfig
from ..registry import DecoderPart, Sizes


def frame_causal_mask(tiles: int, offset: int, per_frame: int, device) -> Tensor:
    """(tiles, offset + tiles) bool: a tile of frame f sees every tile of frames 0..f, itself included."""
    query_frame = (torch.arange(tiles, device=device) + offset) // per_frame
    key_frame = torch.arange(offset + tiles, device=device) // per_frame
    return key_frame[None, :] <= query_frame[:, None]


class FramesDecoder(Decoder):
    """Frames (B, T, C, H, W) in [0, 1] -> the next frames (B, T, C, H, W) in [0, 1].

    Each frame is cut into N = (H/patch)(W/patch) tiles; a tile's token is a linear map of its
    pixels plus a learned tile position and a sinusoidal frame index. State: {"memory_mask" (B, S),
    "cross": per layer (k, v) of the memory, "self": per layer a ``KVCache`` of the tiles so far,
    (B, H, t*N, D/H)}.
    """

    def __init__(self, channels: int, height: int, width: int, d_model: int, layers: int, heads: int,
                 ff: int, dropout: float, memory_dim: int, patch: int):
        super().__init__()
        if patch < 1 or height % patch or width % patch:
            raise ValueError(f"frame size {height}x{width} must be a multiple of patch {patch}")
        if d_model % heads:
            raise ValueError(f"d_model {d_model} must be a multiple of heads {heads}")
        self.shape = (channels, height, width)
        self.patch, self.grid = patch, (height // patch, width // patch)
        self.per_frame = self.grid[0] * self.grid[1]  # N tiles per frame
        pixels = channels * patch * patch
        self.embed = nn.Linear(pixels, d_model)
        self.tile_pos = nn.Parameter(torch.randn(self.per_frame, d_model) * d_model ** -0.5)  # (N, D)
        self.register_buffer("time", sinusoids(256, d_model), persistent=False)  # (frames, D)
        self.drop = Dropout(dropout)
        # pre-LN Transformer layers whose self-attention is frame-causal (``frame_causal_mask``)
        self.layers = nn.ModuleList(DecoderLayer(d_model, heads, ff, dropout, memory_dim) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.proj = nn.Linear(d_model, pixels)

    def to_tiles(self, frames: Tensor) -> Tensor:
        """(B, T, C, H, W) -> (B, T*N, C*p*p), tiles in row-major order within each frame."""
        B, T, C = frames.shape[:3]
        (gh, gw), p = self.grid, self.patch
        x = frames.reshape(B, T, C, gh, p, gw, p).permute(0, 1, 3, 5, 2, 4, 6)  # (B, T, gh, gw, C, p, p)
        return x.reshape(B, T * gh * gw, C * p * p)

    def from_tiles(self, tiles: Tensor, channels: int | None = None) -> Tensor:
        """(B, T*N, C*p*p) -> (B, T, C, H, W), the inverse of ``to_tiles``; ``channels`` for per-tile
        outputs other than pixels (C = the frames' channels by default)."""
        B = tiles.size(0)
        (_, H, W), (gh, gw), p = self.shape, self.grid, self.patch
        C = self.shape[0] if channels is None else channels
        x = tiles.reshape(B, -1, gh, gw, C, p, p).permute(0, 1, 4, 2, 5, 3, 6)  # (B, T, C, gh, p, gw, p)
        return x.reshape(B, -1, C, H, W)

    def init_state(self, enc_outputs, *args):
        memory = as_memory(enc_outputs, *args)
        B, H = memory.states.size(0), self.layers[0].self_attn.heads
        return {
            "memory_mask": memory.mask,
            "cross": [layer.cross_attn.project(memory.states) for layer in self.layers],
            "self": [KVCache.empty(B, H, self.norm.normalized_shape[0] // H, memory.states, dtype=memory.states.dtype)
                     for _ in self.layers],
        }

    def sampling(self, state, generator: torch.Generator):
        """``state`` for a rollout that samples: a decoder of pixels regressed to their mean has no
        distribution to draw from; decoders that have one (kind: warp) override this."""
        raise UserError("--sample: the frames decoder predicts the mean frame and has nothing to sample; "
                        "a model with decoder kind: warp samples its motions")

    def tokens(self, X: Tensor, state) -> Tensor:
        """(B, T, C, H, W) -> (B, T*N, D): each tile's pixels, mapped to the model width."""
        return self.embed(self.to_tiles(X))

    def positions(self, start: int, frames: int) -> Tensor:
        """(frames*N, D): tile position plus frame index for frames start..start+frames-1."""
        # past the table, rows computed for this call: nothing is cached on self while rollouts share the model
        table = self.time if start + frames <= self.time.size(0) else sinusoids(start + frames, self.time.size(1))
        time = table[start: start + frames].to(self.time)  # (T, D)
        return (time[:, None, :] + self.tile_pos[None, :, :]).reshape(frames * self.per_frame, -1)

    def forward(self, X: Tensor, state):
        """X (B, T, C, H, W) continuing the frames in ``state`` -> predicted next frames, new state."""
        h, state = self.hidden(X, state)
        pixels = torch.sigmoid(self.proj(h))  # (B, T*N, C*p*p)
        return self.from_tiles(pixels), state

    def hidden(self, X: Tensor, state):
        """X (B, T, C, H, W) continuing the frames in ``state`` -> the final normalised tile states
        (B, T*N, D) from which an output head draws the next frames, and the new state."""
        if tuple(X.shape[2:]) != self.shape:
            raise ValueError(f"frames of shape {tuple(X.shape[2:])}, decoder built for {self.shape}")
        offset = state["self"][0].length  # tiles so far
        x = self.drop(self.tokens(X, state) + self.positions(offset // self.per_frame, X.size(1)))
        # x: (B, T*N, D). Built once per call for every layer; all True when one frame is fed, but
        # passed even then: without a mask, DecoderLayer's self-attention is token-causal
        mask = frame_causal_mask(x.size(1), offset, self.per_frame, x.device)
        caches = []
        for layer, cross_kv, cache in zip(self.layers, state["cross"], state["self"], strict=True):
            x, cache = layer(x, cross_kv, state["memory_mask"], cache, mask)
            caches.append(cache)
        return self.norm(x), {**state, "self": caches}


@dataclass(frozen=True)
class FramesDecoderConfig(LayerStackConfig):
    """Continuous output: predicts the next frame from the frames so far and the memory."""
    kind: Literal["frames"] = "frames"
    patch: int = 4  # frames are cut into patch x patch tiles, one token each
    loss: Literal["mse", "l1"] = "mse"
    start: Literal["blank", "last_input"] = "blank"  # the first frame fed: blank, or the input video's last
    train_feed: Literal["truth", "own"] = "truth"  # fed in training: true frames (teacher forcing) or the
    # decoder's own predictions (free running: trains exactly what rollout does, no exposure bias)
    context: int = 1  # with start: last_input, how many of the input's last frames the decoder reads first
    slack: int = 0  # the loss forgives a whole-clip displacement of up to this many pixels: for targets
    # whose position the source does not say (text to video); 0 for prediction, where it is determined

    def check(self):
        super().check()
        sizes(self, "patch", high=4096)
        sizes(self, "slack", low=0, high=64)
        sizes(self, "context", high=64)


def build(cfg: FramesDecoderConfig, dims: Sizes) -> FramesDecoder:
    channels, height, width = dims.frame_shape
    try:
        return FramesDecoder(channels, height, width, d_model=cfg.d_model, layers=cfg.layers, heads=cfg.heads,
                             ff=cfg.ff, dropout=cfg.dropout, memory_dim=dims.memory_dim, patch=cfg.patch)
    except ValueError as e:
        raise UserError(f"model.decoder.patch: {e}") from None


FRAMES = DecoderPart(FramesDecoderConfig, build, frames=True)
