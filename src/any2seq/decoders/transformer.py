"""Transformer decoder (Vaswani et al., 2017), pre-LN or post-LN, with a KV cache for incremental decoding."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..interfaces import Decoder, PerSource, as_memory
from ..nn.embedding import PositionalEmbedding
from ..nn.kv_cache import KVCache
from ..nn.transformer import DecoderLayer, TransformerConfig
from ..registry import DecoderPart, Sizes


class TransformerDecoder(Decoder):
    """State: {"source": PerSource {"memory_mask" (A, S), "cross": per layer (k, v) of the memory,
    each (A, H, S, D/H)}, "self": per layer a ``KVCache`` of the tokens so far, (B, H, t, D/H)}.

    The memory is kept once per source (A of them) and read by the B = A * K rows decoded from it
    (K beams), so beam search neither copies nor reorders it. Decoding on CPU (no gradient), the
    cached keys and values are float32 whatever the model's dtype (``nn.attention.attend``).
    """

    def __init__(self, vocab: int, d_model: int, layers: int, heads: int, ff: int, dropout: float,
                 memory_dim: int, positions: str = "sinusoidal", max_positions: int = 1024, norm: str = "pre",
                 activation: str = "relu", output_bias: bool = False):
        super().__init__()
        self.embed = PositionalEmbedding(vocab, d_model, dropout, positions=positions, max_positions=max_positions)
        self.layers = nn.ModuleList(DecoderLayer(d_model, heads, ff, dropout, memory_dim=memory_dim, norm=norm,
                                                 activation=activation)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(d_model) if norm == "pre" else nn.Identity()  # post-LN layers end normalised
        self.proj = nn.Linear(d_model, vocab, bias=output_bias)
        if output_bias:  # fixed, as HF's final_logits_bias: it comes with imported weights, training leaves it
            nn.init.zeros_(self.proj.bias)
            self.proj.bias.requires_grad_(False)

    def init_state(self, enc_outputs, *args):
        memory = as_memory(enc_outputs, *args)
        B, H = memory.states.size(0), self.layers[0].self_attn.heads
        decoding_on_cpu = memory.states.device.type == "cpu" and not torch.is_grad_enabled()
        dtype = torch.float32 if decoding_on_cpu else memory.states.dtype
        # contiguous: the attention products read them as (A * H) matrices without a copy each step
        cross = [tuple(t.to(dtype, memory_format=torch.contiguous_format) for t in layer.cross_attn.project(memory.states))
                 for layer in self.layers]
        head_dim = self.proj.in_features // H
        return {"source": PerSource(memory_mask=memory.mask, cross=cross),
                "self": [KVCache.empty(B, H, head_dim, memory.states, dtype=dtype) for _ in self.layers]}

    def forward(self, X: Tensor, state):
        """X (B, T) token ids continuing the tokens in ``state`` -> logits (B, T, V), new state."""
        x, state = self.features(X, state)
        return self.proj(x), state

    def input_embedding(self) -> nn.Embedding:
        return self.embed.tokens

    def output_embedding(self) -> nn.Linear:
        return self.proj

    def features(self, X: Tensor, state):
        """What ``forward`` feeds the output layer ``proj``: (B, T, D), new state."""
        offset = state["self"][0].length
        x = self.embed(X, offset)
        caches = []
        source = state["source"]
        for layer, cross_kv, cache in zip(self.layers, source["cross"], state["self"]):
            x, cache = layer(x, cross_kv, source["memory_mask"], cache)
            caches.append(cache)
        return self.norm(x), {**state, "self": caches}

    def cross_attention(self, X: Tensor, state) -> Tensor:
        """Cross-attention probabilities (layers, B, H, T, S) over the memory while reading X (B, T).

        For plots: a forward hook hands each layer's CrossAttention inputs to its ``weights``, so
        the fused kernel of the decoding path stays as it is.
        """
        maps = []

        def record(module, inputs, output):
            maps.append(module.weights(*inputs))

        hooks = [layer.cross_attn.register_forward_hook(record) for layer in self.layers]
        try:
            self(X, state)
        finally:
            for hook in hooks:
                hook.remove()
        return torch.stack(maps)


@dataclass(frozen=True)
class TransformerDecoderConfig(TransformerConfig):
    start: Literal["bos", "pad"] = "bos"  # the token read first: <s>, or <pad> (Marian, Pegasus)
    output_bias: bool = False  # a fixed (never trained) bias on the output logits, as HF's final_logits_bias
    never_output: tuple[int, ...] = ()  # ids whose log-probs search sets to -inf (after the softmax)


def build(cfg: TransformerDecoderConfig, dims: Sizes) -> TransformerDecoder:
    return TransformerDecoder(dims.tgt_vocab, cfg.d_model, cfg.layers, cfg.heads, ff=cfg.ff, dropout=cfg.dropout,
                              memory_dim=dims.memory_dim, positions=cfg.positions,
                              max_positions=cfg.max_positions, norm=cfg.norm, activation=cfg.activation,
                              output_bias=cfg.output_bias)


TRANSFORMER = DecoderPart(TransformerDecoderConfig, build)
