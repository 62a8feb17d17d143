"""The plain PyTorch baseline: ``torch.nn.Transformer`` (pre-LN, the same sizes as any2seq's), a
textbook training loop, and greedy and beam search that re-run the decoder over the whole prefix at
every step (no KV cache) and keep finished rows in the batch -- what a first implementation does.

Trains on the shared batches; runs in either venv (torch, numpy and sentencepiece only).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import (  # noqa: E402
    BOS,
    EOS,
    PAD,
    StepTimer,
    decode_modes,
    length_limit,
    load_batches,
    run_system,
    setup_torch,
    update,
    versions,
)
from torch import nn  # noqa: E402


class PlainTransformer(nn.Module):
    def __init__(self, vocab: int, d_model: int, layers: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(vocab, d_model, padding_idx=PAD)  # shared: source, target and output
        nn.init.normal_(self.embed.weight, 0, d_model ** -0.5)
        self.register_buffer("positions", sinusoids(1024, d_model), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.transformer = nn.Transformer(d_model, heads, layers, layers, ff, dropout, batch_first=True,
                                          norm_first=True)

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.drop(self.embed(ids) * math.sqrt(self.d_model) + self.positions[: ids.size(1)])

    def encode(self, src):
        src_pad = src == PAD
        return self.transformer.encoder(self._embed(src), src_key_padding_mask=src_pad), src_pad

    def decode(self, prefix, memory, src_pad):
        """logits (B, T, V) for every position of ``prefix`` (B, T) -- the whole prefix, every call."""
        T = prefix.size(1)
        causal = torch.triu(torch.full((T, T), float("-inf"), device=prefix.device), diagonal=1)
        h = self.transformer.decoder(self._embed(prefix), memory, tgt_mask=causal, tgt_is_causal=True,
                                     memory_key_padding_mask=src_pad)
        return h @ self.embed.weight.t()

    def forward(self, src, tgt_in):
        memory, src_pad = self.encode(src)
        return self.decode(tgt_in, memory, src_pad)


def sinusoids(n: int, d: int) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return table


def train(model, spec, device, timer):
    t = spec["train"]
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=t["lr"], betas=tuple(t["betas"]), eps=t["eps"], weight_decay=0.0)
    model.train()
    loss_value = None
    for step, b in enumerate(load_batches(spec), start=1):
        src, tgt = torch.from_numpy(b["src"]).long().to(device), torch.from_numpy(b["tgt"]).long().to(device)
        n_tokens = int(b["tgt_len"].sum())
        timer.step(n_tokens)
        tgt_in = torch.cat([torch.full_like(tgt[:, :1], BOS), tgt[:, :-1]], dim=1)
        tgt_in = tgt_in.masked_fill(tgt_in == EOS, PAD)  # the EOS is never an input
        logits = model(src, tgt_in)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD,
                               label_smoothing=t["label_smoothing"], reduction="sum")
        update(opt, params, loss, n_tokens, step, t)
        loss_value = loss.detach()
    timer.end()
    return float(loss_value) / n_tokens if loss_value is not None else None


@torch.inference_mode()
def greedy(model, src, limits):
    memory, src_pad = model.encode(src)
    B, width = src.size(0), int(limits.max())
    ys = torch.full((B, 1), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    for t in range(width):
        nxt = model.decode(ys, memory, src_pad)[:, -1].argmax(-1)
        nxt = nxt.masked_fill(done, PAD)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= (nxt == EOS) | (limits <= t + 1)
        if done.all():
            break
    return ys[:, 1:]


@torch.inference_mode()
def beam_search(model, src, limits, k: int, length_penalty: float = 1.0):
    """Beam search over (B*k) rows without a cache; finished beams extend with PAD at no cost."""
    memory, src_pad = model.encode(src)
    B, device = src.size(0), src.device
    memory, src_pad = memory.repeat_interleave(k, 0), src_pad.repeat_interleave(k, 0)
    limits = limits.repeat_interleave(k)
    scores = torch.full((B, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    scores = scores.view(-1)
    ys = torch.full((B * k, 1), BOS, dtype=torch.long, device=device)
    lengths = torch.zeros(B * k, device=device)
    done = torch.zeros(B * k, dtype=torch.bool, device=device)
    for t in range(int(limits.max())):
        logp = model.decode(ys, memory, src_pad)[:, -1].float().log_softmax(-1)  # (B*k, V)
        V = logp.size(-1)
        logp[done] = float("-inf")
        logp[done, PAD] = 0.0  # a finished beam keeps its score
        cand = (scores[:, None] + logp).view(B, k * V)
        top, idx = cand.topk(k, dim=-1)
        beam = (idx // V + torch.arange(B, device=device)[:, None] * k).view(-1)
        tok = (idx % V).view(-1)
        ys, done, lengths = torch.cat([ys[beam], tok[:, None]], dim=1), done[beam], lengths[beam]
        lengths = lengths + (~done).float()
        done = done | (tok == EOS) | (limits <= t + 1)
        scores = top.view(-1)
        if done.all():
            break
    norm = (scores / lengths.clamp(min=1) ** length_penalty).view(B, k)
    best = norm.argmax(-1) + torch.arange(B, device=device) * k
    return ys[best, 1:]


def body(spec: dict) -> dict:
    torch_, device = setup_torch(spec)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spec["spm"])
    m = spec["model"]
    model = PlainTransformer(sp.vocab_size(), m["d_model"], m["layers"], m["heads"], m["ff"], m["dropout"]).to(device)
    timer = StepTimer(device)
    final_loss = train(model, spec, device, timer)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    result = {"train": {**timer.summary(spec["train"]["timing_warmup"]), "params": params, "final_loss": final_loss},
              "versions": versions("torch"), "decode": {},
              "note": "nn.Transformer; decoder re-run over the prefix each step"}

    def run(batch_lines, indices, beam):
        ids = sp.encode(batch_lines)
        src = torch.full((len(ids), max(max(len(i) for i in ids), 1)), PAD, dtype=torch.long)
        for row, seq in enumerate(ids):
            src[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        limits = torch.tensor([length_limit(len(s), spec) for s in ids], device=device)
        src = src.to(device)
        out = greedy(model, src, limits) if beam == 1 else beam_search(model, src, limits, beam)
        texts = []
        for row in out.tolist():
            row = row[: row.index(EOS)] if EOS in row else row
            texts.append(sp.decode([i for i in row if i not in (PAD, BOS)]))
        return texts

    result["decode"] = decode_modes("torch", run, spec)
    return result


if __name__ == "__main__":
    run_system("torch", body)
