"""RNN/GRU/LSTM decoders, plain (Sutskever et al., 2014; Cho et al., 2014) or with attention:
additive (Bahdanau et al., 2015), fed back into the recurrence step by step, or multiplicative
(Luong et al., 2015) on top of the recurrence, which runs over a whole sequence at once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..interfaces import Decoder, PerSource, as_memory
from ..nn.attention import AdditiveAttention, MultiplicativeAttention
from ..nn.rnn import RNN_CELLS, RNNConfig
from ..registry import DecoderPart, Sizes


class RNNDecoder(Decoder):
    """State: {"hidden" (B, L, H) [, "cell" (B, L, H)], "source": PerSource {"memory" (A, S, Dm),
    "mask" (A, S) [, "keys" (A, S, *) the attention's projection of the memory]}}.

    The memory is kept once per source (A of them) and read by the B = A * K rows decoded from it
    (K beams), as in the Transformer decoder.
    """

    def __init__(self, vocab: int, cell: str, embed: int, hidden: int, layers: int, dropout: float,
                 memory_dim: int, attention: str = "bahdanau"):
        super().__init__()
        self.cell, self.attention_kind = cell, attention
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.drop = nn.Dropout(dropout)
        self.bridge = nn.Linear(memory_dim, layers * hidden)  # memory summary -> initial hidden
        feed = memory_dim if attention == "bahdanau" else 0  # Bahdanau feeds the context back in
        self.rnn = RNN_CELLS[cell](embed + feed, hidden, layers, batch_first=True,
                                   dropout=dropout if layers > 1 else 0.0)
        if attention == "bahdanau":
            self.attention = AdditiveAttention(hidden, memory_dim, hidden)
        elif attention in ("dot", "general"):
            self.attention = MultiplicativeAttention(hidden, memory_dim, general=attention == "general")
        else:
            self.attention = None
        out_in = hidden + (memory_dim if self.attention is not None else 0)
        self.pre_output = nn.Linear(out_in, embed)
        self.proj = nn.Linear(embed, vocab, bias=False)

    def init_state(self, enc_outputs, *args):
        memory = as_memory(enc_outputs, *args)
        m = memory.mask.unsqueeze(-1).to(memory.states.dtype)
        summary = (memory.states * m).sum(1) / m.sum(1).clamp(min=1)  # (B, Dm) masked mean
        L, H = self.rnn.num_layers, self.rnn.hidden_size
        source = PerSource(memory=memory.states, mask=memory.mask)
        if self.attention is not None:
            source["keys"] = self.attention.keys(memory.states)
        state = {"hidden": torch.tanh(self.bridge(summary)).view(-1, L, H), "source": source}
        if self.cell == "lstm":
            state["cell"] = torch.zeros_like(state["hidden"])
        return state

    def forward(self, X: Tensor, state):
        """X (B, T) token ids -> logits (B, T, V) and the state after the last of them."""
        x, state = self.features(X, state)
        return self.proj(x), state

    def input_embedding(self) -> nn.Embedding:
        return self.embed

    def output_embedding(self) -> nn.Linear:
        return self.proj

    def features(self, X: Tensor, state):
        """What ``forward`` feeds the output layer ``proj``: (B, T, E), and the new state."""
        x = self.drop(self.embed(X))  # (B, T, E)
        if self.attention_kind == "bahdanau":
            out, context, rec = self._additive(x, state)
        else:
            out, rec = self.rnn(x, self._recurrent(state))
            context = None
            if self.attention is not None:
                source = state["source"]
                context, _ = self.attention(out, source["keys"], source["memory"], source["mask"])
        feats = out if context is None else torch.cat([out, context], dim=-1)
        return self.drop(torch.tanh(self.pre_output(feats))), {**state, **self._unpack(rec)}

    def cross_attention(self, X: Tensor, state) -> Tensor | None:
        """Attention probabilities (1, B, 1, T, S) over the memory while reading X (B, T), for
        plots (one layer, one head); None for a decoder without attention."""
        if self.attention is None:
            return None
        maps = []  # Bahdanau attends once per step, Luong once per call: both concatenate on T
        hook = self.attention.register_forward_hook(lambda module, inputs, output: maps.append(output[1]))
        try:
            self(X, state)
        finally:
            hook.remove()
        return torch.cat(maps, dim=1)[None, :, None]

    def _additive(self, x: Tensor, state):
        """Bahdanau: the context for step t is computed from the hidden state before it."""
        rec, outs, contexts = self._recurrent(state), [], []
        source = state["source"]
        for t in range(x.size(1)):
            h = rec[0] if isinstance(rec, tuple) else rec
            context, _ = self.attention(h[-1][:, None], source["keys"], source["memory"], source["mask"])
            out, rec = self.rnn(torch.cat([x[:, t: t + 1], context], dim=-1), rec)
            outs.append(out)
            contexts.append(context)
        return torch.cat(outs, 1), torch.cat(contexts, 1), rec

    def _recurrent(self, state):
        h = state["hidden"].transpose(0, 1).contiguous()  # (L, B, H), as torch's RNNs want it
        return (h, state["cell"].transpose(0, 1).contiguous()) if self.cell == "lstm" else h

    def _unpack(self, rec):
        if self.cell == "lstm":
            return {"hidden": rec[0].transpose(0, 1), "cell": rec[1].transpose(0, 1)}
        return {"hidden": rec.transpose(0, 1)}


@dataclass(frozen=True)
class RNNDecoderConfig(RNNConfig):
    attention: Literal["none", "bahdanau", "dot", "general"] = "bahdanau"


def build(cfg: RNNDecoderConfig, dims: Sizes) -> RNNDecoder:
    try:
        return RNNDecoder(dims.tgt_vocab, cfg.kind, cfg.embed, cfg.hidden, layers=cfg.layers, dropout=cfg.dropout,
                          memory_dim=dims.memory_dim, attention=cfg.attention)
    except ValueError as e:  # dot attention over a memory of another width
        raise UserError(f"model.decoder.attention: {e}") from None


RNN = DecoderPart(RNNDecoderConfig, build)  # kind: rnn, gru or lstm
