"""The encoder-decoder interfaces (d2l, "Encoder-Decoder Architecture"), read this file first.

Shape letters used in comments throughout any2seq:
    B batch, S source length, T target length, D model width, V vocabulary, H heads, K beam.

Conventions:
    * Everything is batch-first.
    * Masks are boolean and True means "a real position that may be attended to"; they are
      built from the inputs (lengths, causal position), never from ``self.training``.
    * ``*args`` after the inputs carries the source lengths (B,), as in d2l's ``enc_valid_lens``.
    * Decoder state is a value: ``init_state`` returns one, ``forward`` returns a new one, and
      nothing is cached on ``self``. A state is a tree of dicts, lists and tuples whose tensor
      leaves all have the batch on dimension 0, so ``reorder_state`` serves every decoder. A
      ``PerSource`` node holds what the rows decoded from one source share (the K beams of a
      sentence read the same encoder memory): its dimension 0 counts sources, not rows. A
      ``Rows`` leaf (the Transformer's ``KVCache``) takes ``reorder_state``'s selections itself.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from .errors import UserError

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2  # special token ids shared by every tokenizer and token decoder

State = Any  # a tree (dict / list / tuple / dataclass) of tensors with the batch on dim 0


@dataclass(frozen=True)
class Memory:
    """What an encoder hands the decoder."""

    states: Tensor  # (B, S, D) one vector per source position
    mask: Tensor  # (B, S) bool, True at real positions
    final: Optional[Tensor] = None  # (B, D) optional summary (e.g. an RNN's last state)


class MissingContract(UserError, TypeError):
    """A component lacks a piece the model needs: one line naming its class and the piece (a
    ``UserError``: the command line answers it in one line, exit status 2, like a bad config key)."""

    def __init__(self, component, piece: str):
        super().__init__(f"{type(component).__name__} does not declare {piece}")


class Encoder(nn.Module):
    """The base encoder interface of the encoder-decoder architecture.

    Declares ``out_dim``, the width D of the memory it returns (decoders are built for it), and,
    if it reads tokens, ``input_embedding()`` (for ``share_embeddings``). What a task asks before
    the encoder is built, its config answers (``EncoderConfig``).
    """

    out_dim: Optional[int] = None  # set by every encoder, in __init__

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def forward(self, X, *args):
        raise NotImplementedError

    def input_embedding(self) -> Optional[nn.Embedding]:
        """The source token table; None for an encoder that reads no tokens (images, audio)."""
        return None


class EncoderConfig:
    """What a task asks of an encoder before one is built: a task reads and batches its inputs (for
    the tokenizers, the training batches) before the model exists, so the encoder's config answers.
    An encoder's frozen config dataclass subclasses this and answers what its inputs need; asking
    one that does not answer is a one-line error naming its class.
    """

    def input_channels(self) -> int:
        """The colour channels of the images it reads: 1 grey, 3 RGB."""
        raise MissingContract(self, "input_channels(), the colour channels of the images it reads")

    def memory_length(self, size: int) -> int:
        """About how many memory positions a source of ``size`` (audio: samples) becomes: what a
        batch of such sources is sized by."""
        raise MissingContract(self, "memory_length(size), the memory positions a source of that size becomes")

    def own_tokenizer(self) -> bool:
        """Whether text reaches it as the ids of the tokenizer saved with its pretrained weights (a
        text task then copies that tokenizer into the run) instead of a sentencepiece model trained
        on the task's data."""
        return False


def encoder_config(cfg) -> EncoderConfig:
    """``cfg`` as the ``EncoderConfig`` a task asks; a plain config class is the one-line error."""
    if not isinstance(cfg, EncoderConfig):
        raise MissingContract(cfg, "EncoderConfig's methods (its config class does not subclass "
                              "any2seq.interfaces.EncoderConfig)")
    return cfg


class Decoder(nn.Module):
    """The base decoder interface: ``init_state`` from the encoder's outputs, then ``forward``.

    ``forward(X, state)`` returns ``(output, new_state)``; feeding a sequence in one call or
    token by token through the returned states gives the same outputs.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def init_state(self, enc_outputs, *args):
        raise NotImplementedError

    def forward(self, X, state):
        raise NotImplementedError

    # A token decoder whose logits are ``output_embedding()(features(X, state)[0])`` declares both:
    # the loss then fuses that product with the softmax (nn/loss.py) instead of materialising (B, T, V)
    # logits, and ``tie_output`` shares the output layer's weight with ``input_embedding()``.

    def input_embedding(self) -> Optional[nn.Embedding]:
        """The target token table; None for a decoder that reads no tokens (frames)."""
        return None

    def output_embedding(self) -> Optional[nn.Linear]:
        """The output layer mapping ``features`` to logits; None when ``forward`` has no such layer."""
        return None

    def features(self, X, state):
        """What ``output_embedding()`` maps to logits: (B, T, D), and the new state."""
        raise MissingContract(self, "features(X, state), which its output_embedding() needs")


class EncoderDecoder(nn.Module):
    """The base class for the encoder-decoder architecture."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, enc_X, dec_X, *args):
        enc_outputs = self.encoder(enc_X, *args)
        dec_state = self.decoder.init_state(enc_outputs, *args)
        return self.decoder(dec_X, dec_state)


Step = Callable[[Tensor, State], "tuple[Tensor, State]"]
"""``step(tokens (B,), state) -> (log_probs (B, V), state)``: all that search ever sees."""


def lengths_to_mask(lengths: Tensor, max_len: Optional[int] = None) -> Tensor:
    """(B,) lengths -> (B, L) bool mask, True at real positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def as_memory(enc_outputs, lengths: Optional[Tensor] = None) -> Memory:
    """Accept what any encoder returns: a ``Memory``, a (B, S, D) tensor, or ``(outputs, hidden)``.

    A user's own seed-style encoder can therefore return plain batch-first tensors.
    """
    if isinstance(enc_outputs, Memory):
        return enc_outputs
    final = None
    if isinstance(enc_outputs, (tuple, list)):
        enc_outputs, final = enc_outputs[0], enc_outputs[1]
        if isinstance(final, (tuple, list)):  # an LSTM's (h, c): keep h
            final = final[0]
        if final is not None and final.dim() == 3:  # (layers, B, D): keep the top layer
            final = final[-1]
    if not isinstance(enc_outputs, Tensor) or enc_outputs.dim() != 3:
        raise TypeError("an encoder must return a Memory, a (B, S, D) tensor or (outputs, hidden)")
    B, S, _ = enc_outputs.shape
    if lengths is None:
        mask = torch.ones(B, S, dtype=torch.bool, device=enc_outputs.device)
    else:
        mask = lengths_to_mask(lengths.to(enc_outputs.device), S)
    return Memory(enc_outputs, mask, final)


class PerSource(dict):
    """A state node (a dict) of tensors kept once per source, not once per row.

    Beam search decodes K rows from each source; what they all read (the encoder memory, its
    projected keys and values) need not be copied K times, nor reordered when beams swap. A
    decoder that keeps such tensors here sees ``rows // sources`` rows per source (consecutive
    rows share one), and ``reorder_state`` selects them by source.
    """


class Rows:
    """A state leaf that maps its own tensors: ``map_state`` hands it ``fn`` and takes what
    ``map`` returns. ``reorder_state``'s ``fn`` is a ``SelectRows``, so a leaf can tell a row
    selection from other maps and, say, apply it lazily (``nn.kv_cache.KVCache``)."""

    __slots__ = ()

    def map(self, fn: Callable[[Tensor], Tensor]) -> Rows:
        raise NotImplementedError


class SelectRows:
    """``fn(t) = t.index_select(0, index)``: the map ``reorder_state`` applies."""

    def __init__(self, index: Tensor):
        self.index = index

    def __call__(self, t: Tensor) -> Tensor:
        return t.index_select(0, self.index)


def map_state(fn: Callable[[Tensor], Tensor], state: State,
              per_source: Callable[[Tensor], Tensor] | None = None) -> State:
    """Apply ``fn`` to every tensor leaf of a state tree; other leaves pass through. Leaves under
    a ``PerSource`` node get ``per_source`` instead, when one is given."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, Rows):
        return state.map(fn)
    if isinstance(state, PerSource):
        return PerSource({k: map_state(per_source or fn, v) for k, v in state.items()})
    if isinstance(state, dict):
        return {k: map_state(fn, v, per_source) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(map_state(fn, v, per_source) for v in state)
    if is_dataclass(state) and not isinstance(state, type):
        return replace(state, **{f.name: map_state(fn, getattr(state, f.name), per_source) for f in fields(state)})
    return state


def reorder_state(state: State, index: Tensor, sources: Tensor | slice | None = None) -> State:
    """Select batch rows ``index`` (shape (B',)) from every tensor in ``state``.

    Beam search uses it to expand a batch into beams, follow back-pointers and drop finished
    sentences; no decoder needs a reorder method of its own. Tensors under a ``PerSource`` node
    select ``sources`` instead (a (A',) index, or ``slice(None)`` to keep them all without a
    copy); by default ``index``, each row its own source.
    """
    sources = index if sources is None else sources

    def per_source(t: Tensor) -> Tensor:
        return t[sources] if isinstance(sources, slice) else t.index_select(0, sources)

    return map_state(SelectRows(index), state, per_source)


def shift_right(tgt: Tensor, bos: int) -> Tensor:
    """The label-shift contract, in one place: the decoder reads ``<bos> y[:-1]`` and predicts ``y``.

    ``tgt`` (B, T) holds ``y`` (ending in ``<eos>``, then padding); returns the decoder input (B, T).
    """
    return torch.cat([tgt.new_full((tgt.size(0), 1), bos), tgt[:, :-1]], dim=1)
