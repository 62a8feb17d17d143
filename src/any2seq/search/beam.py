"""Batched beam search over a step function, after fairseq's SequenceGenerator, read small.

K beams per sentence run as one batch of (sentences x K) rows, after a first step of one row per
sentence (all K would start from bos). An eos candidate is finalised only when it ranks among the
step's top K candidates, as in fairseq (so beam size 1 is greedy); finished hypotheses are ranked
by score / len**length_penalty, len counting the eos (the length penalty of Wu et al. 2016 in
fairseq's simple form). Sentences whose n-best list can no longer change leave the batch through
``reorder_state``, which keeps a state's ``PerSource`` part (the encoder memory) once per sentence
instead of once per beam.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from any2seq.interfaces import State, Step, reorder_state
from any2seq.search.greedy import Hypothesis, MaxLen, max_len_tensor, state_device

NEG_INF = float("-inf")


class Finished:
    """The best ``beam`` finished hypotheses of every sentence, kept sorted best first."""

    def __init__(self, batch_size: int, beam: int, width: int, length_penalty: float,
                 device: torch.device):
        self.norm = torch.full((batch_size, beam), NEG_INF, device=device)  # (B, K) rank by this
        self.raw = torch.full((batch_size, beam), NEG_INF, device=device)  # (B, K) real log-prob
        self.tokens = torch.zeros(batch_size, beam, width, dtype=torch.long, device=device)
        self.lengths = torch.zeros(batch_size, beam, dtype=torch.long, device=device)  # ids held
        self.length_penalty = length_penalty

    def add(self, sent: Tensor, raw: Tensor, tokens: Tensor, length: int) -> None:
        """Offer hypotheses of sentences ``sent`` (A,): scores ``raw`` (A, N), -inf for none,
        ids ``tokens`` (A, N, t); ``length`` is what the penalty counts (ids, plus eos if any)."""
        K, width, n_ids = self.norm.size(1), self.tokens.size(2), tokens.size(2)
        norm = torch.cat([self.norm[sent], raw / max(length, 1) ** self.length_penalty], 1)
        tokens = torch.cat([self.tokens[sent], F.pad(tokens, (0, width - n_ids))], 1)
        new_lengths = torch.full(raw.shape, n_ids, dtype=torch.long, device=raw.device)
        lengths = torch.cat([self.lengths[sent], new_lengths], 1)
        raw = torch.cat([self.raw[sent], raw], 1)  # (A, K + N)
        self.norm[sent], best = norm.topk(K, dim=1)
        self.raw[sent] = raw.gather(1, best)
        self.tokens[sent] = tokens.gather(1, best[:, :, None].expand(-1, -1, width))
        self.lengths[sent] = lengths.gather(1, best)

    def count(self, sent: Tensor) -> Tensor:
        """(A,) how many finished hypotheses each of sentences ``sent`` holds."""
        return self.norm[sent].isfinite().sum(1)

    def hypotheses(self, n_best: int) -> list[list[Hypothesis]]:
        """The ``n_best`` best of every sentence, best first (fewer if fewer exist)."""
        columns = (self.norm[:, :n_best], self.raw[:, :n_best], self.tokens[:, :n_best],
                   self.lengths[:, :n_best])
        return [[Hypothesis(ids[:n], raw, norm)
                 for norm, raw, ids, n in zip(*sentence) if norm > NEG_INF]
                for sentence in zip(*(column.tolist() for column in columns))]


def topk(x: Tensor, k: int, block: int = 64) -> tuple[Tensor, Tensor]:
    """``x.topk(k, dim=1)`` for a wide (A, N) ``x``, faster on CPU (benchmarks/README.md): the k blocks of ``block``
    columns with the largest maxima hold the k largest values (each of those blocks has a value at
    least as large as anything outside them), so one top-k over k * block values finds them.
    Values equal ``torch.topk``'s; among tied values the indices may differ."""
    A, N = x.shape
    if N <= 4 * k * block:
        return x.topk(k, dim=1)
    if N % block:  # pad the last block with -inf
        x = torch.cat([x, x.new_full((A, block - N % block), NEG_INF)], 1)
    blocks = x.view(A, -1, block)
    best = blocks.amax(2).topk(k, dim=1).indices  # (A, k)
    values, within = blocks.gather(1, best[:, :, None].expand(-1, -1, block)).view(A, -1).topk(k, dim=1)
    return values, best.gather(1, within // block) * block + within % block


def top_candidates(scores: Tensor, log_probs: Tensor, k: int, block: int = 64) -> tuple[Tensor, Tensor]:
    """``topk`` of the candidates ``scores[:, :, None] + log_probs`` ((A, W) and (A, W, V)) over
    their flattened (A, W * V) view, without adding the scores to every log-prob: a block's
    largest candidate is its beam's score plus the block's largest log-prob, so the sums are
    formed only for the k best blocks (the same float32 additions, so the same values). Fewer
    than k candidates (a tiny vocabulary) are padded with dead ones (-inf, past the last beam)."""
    A, W, V = log_probs.shape
    if V % block or W * V <= 4 * k * block:  # small or odd vocabularies: every sum, one top-k
        sums = (scores[:, :, None] + log_probs).reshape(A, W * V)
        return topk(F.pad(sums, (0, max(k - W * V, 0)), value=NEG_INF), k)
    blocks = log_probs.reshape(A, -1, block)  # (A, W * V / block, block), each block within one beam
    per_beam = V // block
    block_max = (blocks.amax(2).view(A, W, per_beam) + scores[:, :, None]).view(A, -1)
    best = block_max.topk(k, dim=1).indices  # (A, k)
    sums = blocks.gather(1, best[:, :, None].expand(-1, -1, block)) + scores.gather(1, best // per_beam)[:, :, None]
    values, within = sums.view(A, -1).topk(k, dim=1)
    return values, best.gather(1, within // block) * block + within % block


def select(scores: Tensor, log_probs: Tensor, eos: int, K: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One top-2K over the candidates ``scores[:, :, None] + log_probs`` ((A, W) and (A, W, V))
    of W live beams, as fairseq does: the scores of eos candidates that rank among the top K, per
    source beam (A, W), -inf for none; and the K best non-eos candidates: scores, source beams and
    tokens (A, K) each, best first. A beam has one eos candidate, so the top 2K hold at least K
    others; dead padding candidates (a tiny vocabulary) count as from beam W - 1."""
    A, W, V = log_probs.shape
    values, indices = top_candidates(scores, log_probs, 2 * K)  # sorted, best first
    beams, tokens = (indices // V).clamp_(max=W - 1), indices % V
    is_eos = tokens == eos
    eos_top = values[:, :K].masked_fill(~is_eos[:, :K], NEG_INF)
    eos_scores = scores.new_full((A, W), NEG_INF).scatter_reduce_(1, beams[:, :K], eos_top, "amax")
    rank = torch.arange(2 * K, device=scores.device) + 2 * K * is_eos  # non-eos first, in score order
    pick = rank.topk(K, dim=1, largest=False).indices
    return eos_scores, values.gather(1, pick), beams.gather(1, pick), tokens.gather(1, pick)


def is_done(finished: Finished, sent: Tensor, scores: Tensor, limits: Tensor, t: int,
            n_best: int) -> Tensor:
    """(A,) sentences to stop after step ``t``: at their limit, holding K finished hypotheses, or
    whose n-best no live beam (``scores`` (A, K), t + 1 ids each) can still enter."""
    lp = finished.length_penalty
    # Log-probs are <= 0, so a live beam's final score is <= its score now (<= 0), and divided
    # by len**lp it is largest at one end of the lengths it can still reach, t + 2 .. limit.
    reach = torch.maximum(scores / (t + 2) ** lp, scores / limits[:, None].float() ** lp)
    nth_best = finished.norm[sent, n_best - 1]  # -inf while fewer than n_best are finished
    return ((limits == t + 1) | (finished.count(sent) >= scores.size(1))
            | (nth_best >= reach.amax(1)))


def beam_search(step: Step, state: State, batch_size: int, bos: int, eos: int, max_len: MaxLen,
                beam: int = 5, length_penalty: float = 1.0,
                n_best: int = 1) -> list[list[Hypothesis]]:
    """The ``n_best`` best hypotheses of each sentence, best first, one list per sentence in order.

    ``length_penalty`` 0 ranks by raw log-probability; larger values favour longer outputs.
    Beams still alive at ``max_len`` are cut there and compete as hypotheses without eos.
    """
    if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
        raise ValueError(f"beam must be an integer >= 1, got {beam!r}")
    if isinstance(n_best, bool) or not isinstance(n_best, int) or not 1 <= n_best <= beam:
        raise ValueError(f"n_best must be an integer in 1..beam ({beam}), got {n_best!r}")
    device = state_device(state)
    limits = max_len_tensor(max_len, batch_size, device)
    width = int(limits.max()) if batch_size else 0
    finished = Finished(batch_size, beam, width, length_penalty=length_penalty, device=device)
    empty = (limits == 0).nonzero().squeeze(1)  # nothing to decode: the empty hypothesis, score 0
    finished.add(empty, torch.zeros(empty.numel(), 1, device=device),
                 torch.zeros(empty.numel(), 1, 0, dtype=torch.long, device=device), 0)

    # The first step reads one row per sentence (all K beams would start alike), then K live beams.
    sent = (limits > 0).nonzero().squeeze(1)  # (A,) the original sentence of each active one
    state = reorder_state(state, sent, sources=sent)  # (A*W, ...) for W live beams, W = 1 first
    scores = torch.zeros(sent.numel(), 1, device=device)  # (A, W)
    history = torch.zeros(sent.numel(), 1, 0, dtype=torch.long, device=device)  # (A, W, t)
    tokens = torch.full((sent.numel(),), bos, dtype=torch.long, device=device)  # (A*W,)
    for t in range(width):
        if sent.numel() == 0:
            break
        A, W = scores.shape  # W live beams: 1 in the first step, then K
        log_probs, state = step(tokens, state)  # (A*W, V)
        log_probs = log_probs.float().reshape(A, W, -1)  # (A, W, V)
        eos_scores, scores, origin, tokens = select(scores, log_probs, eos, beam)  # (A, W), then (A, K) each
        if (eos_scores > NEG_INF).any():
            finished.add(sent, eos_scores, history, t + 1)
        history = torch.cat([history.gather(1, origin[:, :, None].expand(-1, -1, t)),
                             tokens[:, :, None]], 2)
        at_limit = limits[sent] == t + 1
        if at_limit.any():  # cut live beams: t + 1 ids, no eos
            finished.add(sent, scores.masked_fill(~at_limit[:, None], NEG_INF), history, t + 1)
        keep = (~is_done(finished, sent, scores, limits[sent], t, n_best)).nonzero().squeeze(1)
        state = reorder_state(state, (keep[:, None] * W + origin[keep]).flatten(),
                              sources=keep if keep.numel() < sent.numel() else slice(None))
        sent, scores, history = sent[keep], scores[keep], history[keep]
        tokens = tokens[keep].flatten()  # (A'*K,)
    return finished.hypotheses(n_best)
