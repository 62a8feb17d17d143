"""A frames decoder that cuts the input's last frame into layers, one per moving thing, and makes
every predicted frame by moving each layer by the sum of its motions so far (layered motion, as in
Wang & Adelson, 1994, with CDNA's predicted kernels, Finn et al., 2016).

Why not move the frame fed back, as the warp decoder does: a rollout then moves its own last
prediction, and whatever softness a step leaves (a pixel its masks split between two motions) is
moved again and compounds, frame after frame, into a smear. Here the pixels always come from the
one sharp input frame; a step only adds its motion to the layer's displacement, and at prediction
a layer moves by its likeliest displacement, so the tenth frame is the input's ink, displaced by
whole pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config_checks import require
from ..registry import DecoderPart, Sizes
from .warp import WarpDecoder, WarpDecoderConfig, build_moving, draw, mode


def accumulate(total: Tensor, step: Tensor) -> Tensor:
    """Distributions over displacements (..., L) and (..., k), L and k odd, entry i meaning a move of
    i - L//2 (resp. i - k//2) pixels -> the distribution of their sum (..., L + k - 1)."""
    lead, L, k = total.shape[:-1], total.size(-1), step.size(-1)
    # conv1d correlates: the flipped step makes it a convolution of the two distributions
    out = F.conv1d(F.pad(total.reshape(1, -1, L), (k - 1, k - 1)), step.reshape(-1, 1, k).flip(-1),
                   groups=step[..., 0].numel())
    return out.reshape(*lead, L + k - 1)


def widen(dist: Tensor, length: int) -> Tensor:
    """(..., L) displacement distribution -> (..., length), zeros added evenly on both sides."""
    pad = (length - dist.size(-1)) // 2
    return F.pad(dist, (pad, pad))


def shift_separable(images: Tensor, down: Tensor, right: Tensor) -> Tensor:
    """images (..., H, W), ``down`` and ``right`` (..., L) distributions over moves of i - L//2
    pixels -> images moved by their product (zero outside the frame: the background is black)."""
    lead, (H, W), L = images.shape[:-2], images.shape[-2:], down.size(-1)
    g = images[..., 0, 0].numel()
    x = images.reshape(1, g, H, W)
    # conv2d correlates; flipped kernels make entry i a move by i - L//2
    x = F.conv2d(x, down.reshape(g, 1, L, 1).flip(2).to(x.dtype), padding=(L // 2, 0), groups=g)
    x = F.conv2d(x, right.reshape(g, 1, 1, L).flip(3).to(x.dtype), padding=(0, L // 2), groups=g)
    return x.reshape(*lead, H, W)


class LayersDecoder(WarpDecoder):
    """The warp decoder's Transformer over tiles (with its motion evidence), and an output head that:

    - cuts the anchor, the input's last frame (fed ``context``-th), into K layers by a softmax per
      pixel, read from the anchor's tile states once and kept in the state;
    - predicts per frame and layer a step of motion, separately down and right (k-way each);
    - keeps in the state each layer's displacement since the anchor, a distribution per axis that
      each step convolves with its motion (a one-hot draw when sampling), and at prediction moves
      the layer by that distribution's mode;
    - draws the frame as the layers, each moved by its displacement, laid over one another with a
      soft maximum, 1 - prod(1 - layer): where the layers do not overlap, each layer's own ink.
    """

    def __init__(self, channels: int, height: int, width: int, kernels: int, kernel_size: int, context: int,
                 **transformer):
        super().__init__(channels, height, width, kernels, kernel_size, draw=False, **transformer)
        d_model, p, k = self.norm.normalized_shape[0], self.patch, kernel_size
        self.context = context
        self.motion = nn.Linear(d_model, kernels * 2 * k)
        self.masks = nn.Linear(d_model, kernels * p * p)
        with torch.no_grad():  # start as a copy of the anchor: its error is the baseline to beat
            self.motion.bias.view(kernels, 2, k)[:, :, k // 2] += 4.0

    def init_state(self, enc_outputs, *args):
        return {**super().init_state(enc_outputs, *args), "layers": None, "moved": None}

    def forward(self, X: Tensor, state):
        first = state["self"][0].length // self.per_frame  # frames fed before this call
        h, state = self.hidden(X, state)  # (B, T*N, D)
        state = {**state, "prev": X[:, -1:].float()}
        B, T = X.shape[:2]
        K, k, anchor = self.kernels, self.kernel_size, self.context - 1
        tiles = h.reshape(B, T, self.per_frame, -1)
        layers = state["layers"]
        if layers is None:  # the first call holds the anchor: the start frames are fed in one call
            if not first <= anchor < first + T:
                raise ValueError(f"the first call must feed the anchor, frame {anchor}; "
                                 f"it fed {first}..{first + T - 1}")
            masks = self.from_tiles(self.masks(tiles[:, anchor - first]).float(), K)[:, 0]  # (B, K, H, W)
            layers = masks.softmax(1)[:, :, None] * X[:, anchor - first, None].float()  # (B, K, C, H, W)
        steps = self.motion(tiles.mean(2)).float().reshape(B, T, K, 2, k)
        sampling = not self.training and state["generator"] is not None
        steps = draw(steps, state["generator"]) if sampling else steps.softmax(-1)
        moved = state["moved"] if state["moved"] is not None else steps.new_ones(B, K, 2, 1)
        displacements = []  # (B, K, 2, L) per frame: frames before the anchor's output stay where they are
        for t in range(T):
            if first + t >= anchor:
                moved = accumulate(moved, steps[:, t])
            displacements.append(moved)
        length = displacements[-1].size(-1)
        moves = torch.stack([widen(d, length) for d in displacements], 1)  # (B, T, K, 2, L)
        if not (self.training or sampling):
            # the likeliest displacement, not the sum of the likeliest steps: at 1.3 pixels a frame
            # the likeliest step is always 1, and ten of them fall 3 pixels short
            moves = mode(moves, -1)
        shifted = shift_separable(layers[:, None].expand(B, T, *layers.shape[1:]),
                                  moves[..., 0, None, :], moves[..., 1, None, :])  # (B, T, K, C, H, W)
        frames = 1 - (1 - shifted.clamp(0, 1)).prod(2)
        return frames.to(h.dtype), {**state, "layers": layers, "moved": moved}


@dataclass(frozen=True)
class LayersDecoderConfig(WarpDecoderConfig):
    """The warp decoder's keys; ``kernels`` is the number of layers, ``kernel_size`` bounds a layer's
    move per frame (kernel_size // 2 pixels on each axis). Needs start: last_input (the anchor)."""
    kind: Literal["layers"] = "layers"
    start: Literal["blank", "last_input"] = "last_input"
    draw: bool = False

    def check(self):
        super().check()
        require(self.start == "last_input", "start",
                "must be last_input: the layers are cut from the input's last frame")
        require(not self.draw, "draw", "must be false: every pixel is moved from the input's last frame")


def build(cfg: LayersDecoderConfig, dims: Sizes) -> LayersDecoder:
    return build_moving(LayersDecoder, cfg, dims, context=cfg.context)


LAYERS = DecoderPart(LayersDecoderConfig, build, frames=True)
