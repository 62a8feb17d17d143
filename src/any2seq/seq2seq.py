"""``build_model(cfg)``: the registry's encoder and decoder builders -> a ``Seq2Seq`` (token targets: a
loss and a search step) or a ``FrameSeq2Seq`` (frame targets: a regression loss and a rollout)."""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import registry
from .config import DataConfig, ModelConfig
from .decoders.transformer import TransformerDecoderConfig
from .errors import UserError
from .interfaces import (BOS_ID, EOS_ID, PAD_ID, Decoder, Encoder, EncoderDecoder, as_memory, lengths_to_mask,
                         shift_right)
from .nn.frame_loss import best_shift_errors
from .nn.loss import linear_cross_entropy
from .nn.transformer import TransformerConfig
from .registry import Sizes


class Seq2Seq(EncoderDecoder):
    """An encoder-decoder over token targets: adds the training loss and the search step."""

    bos, eos, pad = BOS_ID, EOS_ID, PAD_ID

    def __init__(self, encoder: Encoder, decoder: Decoder, label_smoothing: float = 0.0, ctc_weight: float = 0.0,
                 vocab: int = 0, start: int = BOS_ID, never_output: tuple[int, ...] = ()):
        super().__init__(encoder, decoder)
        self.label_smoothing, self.ctc_weight = label_smoothing, ctc_weight
        self.bos = start  # the token the decoder reads first
        # ids search never picks, removed after the softmax as HF removes them (bad_words_ids): the
        # decoder-start row of an imported model still takes its share of the probability mass
        self.never_output = list(never_output)
        # hybrid CTC/attention (Watanabe et al., 2017): a CTC loss on the encoder's states makes it
        # learn a monotonic alignment early, where attention alone can sit on a plateau for long
        self.ctc_head = nn.Linear(encoder.out_dim, vocab) if ctc_weight > 0 else None

    def loss(self, batch) -> tuple[Tensor, int]:
        """Summed label-smoothed cross-entropy over the batch's target tokens (mixed with the CTC
        loss when ``ctc_weight`` > 0), and the number of target tokens."""
        memory = as_memory(self.encoder(batch.src, batch.src_lengths), batch.src_lengths)
        state = self.decoder.init_state(memory, batch.src_lengths)
        smoothing = self.label_smoothing if self.training else 0.0
        proj = self.decoder.output_embedding()
        if proj is not None and proj.bias is None:  # fused: no (B, T, V) logits
            hidden, _ = self.decoder.features(shift_right(batch.tgt, self.bos), state)  # (B, T, D)
            loss = linear_cross_entropy(hidden.flatten(0, 1), proj.weight, batch.tgt.flatten(), ignore_index=self.pad,
                                        label_smoothing=smoothing)
        else:  # an output layer with a bias, or none declared: the decoder's logits (B, T, V)
            logits, _ = self.decoder(shift_right(batch.tgt, self.bos), state)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), batch.tgt.flatten(), ignore_index=self.pad,
                                   label_smoothing=smoothing, reduction="sum")
        if self.ctc_head is not None:
            loss = (1 - self.ctc_weight) * loss + self.ctc_weight * self.ctc_loss(memory, batch.tgt)
        return loss, int(batch.n_tokens)

    def ctc_loss(self, memory, tgt: Tensor) -> Tensor:
        """Summed CTC loss of the targets (eos and padding left out) given the memory; blank = pad."""
        log_probs = self.ctc_head(memory.states).float().log_softmax(-1).transpose(0, 1)  # (S, B, V)
        tokens = (tgt != self.pad) & (tgt != self.eos)
        return F.ctc_loss(log_probs, tgt, memory.mask.sum(1), tokens.sum(1), blank=self.pad, reduction="sum",
                          zero_infinity=True)

    def encode(self, src: Tensor, src_lengths: Tensor):
        """The decoder's initial state for a batch of sources."""
        return self.decoder.init_state(self.encoder(src, src_lengths), src_lengths)

    def step(self, tokens: Tensor, state):
        """The step function search drives: last tokens (B,) -> log-probs (B, V), new state."""
        logits, state = self.decoder(tokens[:, None], state)
        log_probs = logits[:, -1].log_softmax(-1, dtype=torch.float32)
        if self.never_output:
            log_probs[:, self.never_output] = float("-inf")
        return log_probs, state


class FrameSeq2Seq(EncoderDecoder):
    """An encoder-decoder over frame targets (video): regression loss and autoregressive rollout.

    The decoder reads a start frame (blank, or with ``start="last_input"`` the source video's last
    frame) and then each frame before the one it predicts: the true ones in training with
    ``train_feed="truth"`` (teacher forcing), or its own predictions with ``train_feed="own"``, as
    in rollout, so training sees the errors rollout feeds back (no exposure bias).
    """

    def __init__(self, encoder: Encoder, decoder: Decoder, loss: str = "mse", start: str = "blank",
                 train_feed: str = "truth", slack: int = 0, context: int = 1):
        super().__init__(encoder, decoder)
        self.loss_kind, self.start, self.train_feed, self.slack = loss, start, train_feed, slack
        self.context = context

    def start_frame(self, src: Tensor, src_lengths, frame_shape) -> Tensor:
        """(B, c, C, H, W): what the decoder reads first: a blank frame, or the source video's last
        ``context`` frames (the first repeated where a video is shorter); its last output is the first
        predicted frame."""
        if self.start == "last_input":  # src is a video (B, F, C, H, W)
            last = (src_lengths - 1) if src_lengths is not None else torch.full_like(src[:, 0, 0, 0, 0], -1).long()
            back = torch.arange(self.context - 1, -1, -1, device=src.device)  # (c,): c-1 .. 0 frames before the last
            index = (last[:, None] - back[None, :]).clamp(min=0)  # (B, c)
            return src[torch.arange(src.size(0), device=src.device)[:, None], index].float()
        return torch.zeros(src.size(0), 1, *frame_shape, device=src.device)

    def loss(self, batch) -> tuple[Tensor, int]:
        """Summed per-frame error (mean over pixels) over the real target frames, and their count."""
        tgt = batch.tgt  # (B, T, C, H, W)
        start = self.start_frame(batch.src, batch.src_lengths, tgt.shape[2:])
        if self.train_feed == "own":
            pred = self._rollout(self.encode(batch.src, batch.src_lengths), start, tgt.size(1))
        else:
            pred, _ = self(batch.src, torch.cat([start, tgt[:, :-1]], dim=1), batch.src_lengths)
            pred = pred[:, start.size(1) - 1:]  # the outputs for the context frames before the last are not targets
        real = lengths_to_mask(batch.tgt_lengths, tgt.size(1))
        per_frame = best_shift_errors(pred, tgt, real, self.loss_kind, self.slack)  # (B, T)
        return per_frame.masked_fill(~real, 0.0).sum(), int(batch.tgt_lengths.sum())

    def encode(self, src: Tensor, src_lengths):
        return self.decoder.init_state(self.encoder(src, src_lengths), src_lengths)

    def _rollout(self, state, frame: Tensor, n_frames: int) -> Tensor:
        frames = []
        for _ in range(n_frames):
            pred, state = self.decoder(frame, state)
            frame = pred[:, -1:].float()
            frames.append(frame)
        return torch.cat(frames, dim=1)  # (B, n, C, H, W)

    @torch.no_grad()
    def rollout(self, src: Tensor, src_lengths, n_frames: int, frame_shape: tuple[int, int, int],
                generator: torch.Generator | None = None) -> Tensor:
        """Generate ``n_frames`` frames (B, n, C, H, W), each fed back as the next input; with a
        ``generator``, a sample of the decoder's distribution instead of its most likely frames."""
        start = self.start_frame(src, src_lengths, frame_shape)
        state = self.encode(src, src_lengths)
        if generator is not None:
            state = self.decoder.sampling(state, generator)
        return self._rollout(state, start, n_frames)


# --- the factory: the registry's builders, then the model around them ---------------------------

def build_model(cfg: ModelConfig, src_vocab: int = 0, tgt_vocab: int = 0, label_smoothing: float = 0.0,
                encoder: Encoder | None = None, frame_shape: tuple[int, int, int] | None = None):
    """Build the model a config describes; ``encoder`` replaces the configured one (a user's own).

    Token decoders need ``tgt_vocab``; the frames decoder needs ``frame_shape`` (C, H, W) instead.
    """
    dims = Sizes(src_vocab, tgt_vocab, frame_shape=frame_shape)
    if encoder is None:
        encoder = registry.encoder(cfg.encoder.kind).build(cfg.encoder, dims)
    if getattr(encoder, "out_dim", None) is None:  # (a user's encoder may be any nn.Module)
        raise UserError(f"{type(encoder).__name__} does not declare out_dim, the width of its output "
                        "(set self.out_dim in __init__)")
    dims = replace(dims, memory_dim=encoder.out_dim)
    part = registry.decoder(cfg.decoder.kind)
    if part.frames:
        if frame_shape is None:
            raise UserError(f"model.decoder.kind: {cfg.decoder.kind} makes frames, and this task's targets are "
                            "tokens: use a token decoder, or a task with frame targets")
        if cfg.decoder.context > 1 and cfg.decoder.start != "last_input":
            raise UserError("model.decoder.context: reading more than one frame first needs start: last_input")
        if cfg.decoder.start == "last_input" and cfg.encoder.kind != "video":
            raise UserError(f"model.decoder.start: last_input needs a video encoder, not {cfg.encoder.kind}")
        return FrameSeq2Seq(encoder, part.build(cfg.decoder, dims), loss=cfg.decoder.loss, start=cfg.decoder.start,
                            train_feed=cfg.decoder.train_feed, slack=cfg.decoder.slack, context=cfg.decoder.context)
    decoder = part.build(cfg.decoder, dims)
    if cfg.tie_output:
        tie_output(decoder)
    if cfg.share_embeddings:
        share_embeddings(encoder, decoder, src_vocab, tgt_vocab)
    token_decoder = isinstance(cfg.decoder, TransformerDecoderConfig)  # start and never_output are its keys
    start = PAD_ID if token_decoder and cfg.decoder.start == "pad" else BOS_ID
    never_output = cfg.decoder.never_output if token_decoder else ()
    if any(not 0 <= i < tgt_vocab for i in never_output):
        raise UserError(f"model.decoder.never_output: ids must be in 0..{tgt_vocab - 1}, got {list(never_output)}")
    return Seq2Seq(encoder, decoder, label_smoothing=label_smoothing, ctc_weight=cfg.ctc_weight, vocab=tgt_vocab,
                   start=start, never_output=never_output)


def _declared(component: nn.Module, piece: str, key: str):
    """``component.piece()``, or a one-line error naming the key, the class and the missing piece."""
    declared = getattr(component, piece, None)
    value = declared() if callable(declared) else None
    if value is None:
        raise UserError(f"{key}: {type(component).__name__} declares no {piece}(); set {key.split('.')[-1]}: false")
    return value


def tie_output(decoder: nn.Module) -> None:
    proj = _declared(decoder, "output_embedding", "model.tie_output")
    table = _declared(decoder, "input_embedding", "model.tie_output")
    if proj.weight.shape != table.weight.shape:
        raise UserError(f"model.tie_output: the output layer {tuple(proj.weight.shape)} and the target "
                        f"embedding {tuple(table.weight.shape)} differ in size; set tie_output: false")
    proj.weight = table.weight


def share_embeddings(encoder: nn.Module, decoder: nn.Module, src_vocab: int, tgt_vocab: int) -> None:
    src_table = _declared(encoder, "input_embedding", "model.share_embeddings")
    tgt_table = _declared(decoder, "input_embedding", "model.share_embeddings")
    if src_vocab != tgt_vocab or src_table.weight.shape != tgt_table.weight.shape:
        raise UserError("model.share_embeddings: needs tokenizer.joint and equal embedding sizes "
                        f"(source {tuple(src_table.weight.shape)}, target {tuple(tgt_table.weight.shape)})")
    src_table.weight = tgt_table.weight


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def learned_positions(component) -> int:
    """How many positions a Transformer encoder or decoder config with learned positions has; 0 if
    unbounded (sinusoids, recurrent and other components)."""
    learned = isinstance(component, TransformerConfig) and component.positions == "learned"
    return component.max_positions if learned else 0


def within_positions(cfg):
    """``cfg`` with ``decode.max_src_len`` lowered to the encoder's learned positions, past which it
    has none (a table has no row past its end); unchanged for unbounded encoders. Decoding by the
    API and greedy validation both cut sources this way."""
    positions = learned_positions(cfg.model.encoder)
    if positions and isinstance(cfg.decode.max_src_len, int) and cfg.decode.max_src_len > positions:
        return replace(cfg, decode=replace(cfg.decode, max_src_len=positions))
    return cfg


def output_limit(cfg, max_len: int) -> int:
    """``max_len`` output tokens, or fewer where the decoder's learned positions end."""
    positions = learned_positions(cfg.model.decoder)
    return min(max_len, positions) if positions else max_len


def check_positions(cfg, src_lengths, tgt_lengths) -> None:
    """Training pairs of these token lengths (None: a side that is not tokens) fit the model's learned
    position tables (a table has no row past its end), or a ``UserError`` naming the key, before the
    first step rather than at the first batch holding a longer pair. Targets gain an end of sentence."""
    lower = " (or lower data.max_len)" if isinstance(cfg.data, DataConfig) else ""
    for side, component, lengths, extra, what in (
            ("encoder", cfg.model.encoder, src_lengths, 0, "source tokens"),
            ("decoder", cfg.model.decoder, tgt_lengths, 1, "target tokens with the end of sentence")):
        positions = learned_positions(component)
        longest = 0 if lengths is None or not len(lengths) else int(max(lengths)) + extra
        if positions and longest > positions:
            raise UserError(f"model.{side}.max_positions: {positions} learned positions, but training pairs "
                            f"hold up to {longest} {what}; raise it{lower}")
