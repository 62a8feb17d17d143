"""Inference over many sources of any modality: size-sorted batches (``decode_batches``), walked in
input order by one or more workers (``run_batches``). Token outputs come from any search
(``decode_items``); frame models' rollouts (``FramesOutputTask.rollout``) walk the same batches."""
from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .config import MAX_BEAM
from .data.batching import Items, pad_items
from .errors import NoOutput, UserError
from .search import Hypothesis, beam_search, compose, greedy, sample, temperature, top_k, top_p

MAX_LEN = 65536  # output tokens: the search holds (sources x beam x max_len) ids, so 10**9 cannot fit
INTEGERS = {"beam": "--beam", "n_best": "--n-best", "top_k": "--top-k", "max_len": "--max-len",
            "max_len_b": "decode.max_len_b", "seed": "--seed"}
NUMBERS = {"length_penalty": "--length-penalty", "temperature": "--temperature", "top_p": "--top-p",
           "max_len_a": "decode.max_len_a"}
log = logging.getLogger("any2seq")


@dataclass(frozen=True)
class SearchOptions:
    """How to decode: greedy (beam 1), beam search, or sampling; validated on construction."""

    beam: int = 5
    n_best: int = 1
    length_penalty: float = 1.0
    sample: bool = False
    temperature: float = 1.0
    top_k: int = 0  # 0 = no top-k filter
    top_p: float = 1.0
    max_len: int = 256  # hard cap on output tokens
    max_len_a: float = 1.5  # per-sentence limit: a * source length + b
    max_len_b: int = 10
    seed: int = 0

    def __post_init__(self):
        self._check_types()
        checks = [(self.beam >= 1, "--beam", f"must be at least 1, got {self.beam}"),
                  (self.beam <= MAX_BEAM, "--beam", f"must be at most {MAX_BEAM}, got {self.beam}"),
                  (self.n_best >= 1, "--n-best", f"must be at least 1, got {self.n_best}"),
                  (self.sample or self.n_best <= self.beam, "--n-best", f"{self.n_best} is more than --beam {self.beam}"),
                  (self.n_best <= MAX_BEAM, "--n-best", f"must be at most {MAX_BEAM}, got {self.n_best}"),
                  (self.temperature > 0, "--temperature", f"must be positive, got {self.temperature}"),
                  (self.top_k >= 0, "--top-k", f"must not be negative, got {self.top_k}"),
                  (0 < self.top_p <= 1, "--top-p", f"must be in (0, 1], got {self.top_p}"),
                  (self.max_len >= 1, "--max-len", f"must be at least 1, got {self.max_len}"),
                  (self.max_len <= MAX_LEN, "--max-len", f"must be at most {MAX_LEN}, got {self.max_len}"),
                  (0 <= self.seed < 2 ** 64, "--seed", f"must be in 0..2**64-1, got {self.seed}")]
        for ok, flag, message in checks:
            if not ok:
                raise UserError(f"{flag}: {message}")

    def _check_types(self):
        """API callers may pass anything: ``beam=2.5`` or a NaN length penalty is refused here, by name."""
        if not isinstance(self.sample, bool):
            raise UserError(f"--sample: expected true or false, got {self.sample!r}")
        for name, flag in INTEGERS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise UserError(f"{flag}: must be an integer, got {value!r}")
        for name, flag in NUMBERS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UserError(f"{flag}: must be a finite number, got {value!r}")


def _search(model, src: torch.Tensor, lengths, opts: SearchOptions, generator, sizes):
    state = model.encode(src, lengths)
    B, bos, eos = src.size(0), model.bos, model.eos
    if sizes is not None:  # an output's length follows its source's: tokens, or audio positions
        limits = (sizes.float() * opts.max_len_a + opts.max_len_b).long().clamp(1, opts.max_len)
    else:
        limits = torch.full((B,), opts.max_len, dtype=torch.long, device=src.device)
    if opts.sample:
        filters = [temperature(opts.temperature)]
        filters += [top_k(opts.top_k)] if opts.top_k else []
        filters += [top_p(opts.top_p)] if opts.top_p < 1 else []
        return sample(model.step, state, B, bos, eos, limits, compose(*filters), generator, n=opts.n_best)
    if opts.beam == 1:
        return greedy(model.step, state, B, bos, eos, limits)
    return beam_search(model.step, state, B, bos, eos, limits, opts.beam, opts.length_penalty, opts.n_best)


def decode_ids(model, sources: list[list[int]], opts: SearchOptions, batch_tokens: int = 6000,
               device: torch.device | str = "cpu", progress: bool = False, *, batch_size: int = 0,
               workers: int = 1, max_src_len: int = 1024) -> list[list[Hypothesis]]:
    """Hypotheses (n-best lists) for each token source, in input order; empty sources give empty output."""
    return decode_items(model, Items(sources, [len(s) for s in sources], "tokens"), opts, batch_tokens, device,
                        progress, batch_size=batch_size, workers=workers, max_src_len=max_src_len)


def check_batching(batch_tokens: int | None = None, batch_size: int | None = None, workers: int | None = None,
                   max_src_len: int | None = None):
    """A ``UserError`` naming the flag if a batching setting given (not None) is not a valid integer."""
    for flag, value, low in (("--batch-tokens", batch_tokens, 1), ("--batch-size", batch_size, 0),
                             ("--workers", workers, 1), ("--max-src-len", max_src_len, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise UserError(f"{flag}: must be an integer >= {low}, got {value!r}")


def decode_batches(lengths: np.ndarray, batch_tokens: int, batch_size: int, beam: int) -> list[list[int]]:
    """Indices of the non-empty sources, longest first, cut into batches of at most ``batch_tokens``
    source positions times ``beam`` (at least one source) and, if ``batch_size`` > 0, as many sources."""
    order = np.argsort(-lengths, kind="stable")  # longest first: the first batch shows memory use
    todo = [int(i) for i in order if lengths[i] > 0]
    batches, start = [], 0
    while start < len(todo):
        rows = max(1, batch_tokens // max(int(lengths[todo[start]]) * beam, 1))
        rows = min(rows, batch_size) if batch_size > 0 else rows
        batches.append(todo[start: start + rows])
        start += rows
    return batches


def cap_sources(sources: Items, max_src_len: int) -> Items:
    """Token sources cut to their first ``max_src_len`` ids, with a warning naming each one cut.

    Self-attention over S positions takes S**2 memory: one 96 KB line asked for 8.7 GB and lost
    the whole file (issue 21), so a long line is cut rather than allowed to sink its file.
    Other sources (audio, images) are bounded by their readers.
    """
    cut = np.flatnonzero(sources.lengths > max_src_len) if sources.kind == "tokens" else []
    if not len(cut):
        return sources
    items = list(sources.items)
    for i in cut:
        log.warning(f"any2seq: input {i + 1}: {sources.lengths[i]} source tokens, more than max_src_len "
                    f"{max_src_len}; decoding its first {max_src_len} (decode.max_src_len, --max-src-len)")
        items[i] = items[i][:max_src_len]
    return Items(items, np.minimum(sources.lengths, max_src_len), "tokens")


def batch_generator(seed: int, batch: int, device) -> torch.Generator:
    """Batch ``batch``'s own random stream for sampling, derived from ``seed``: samples depend on
    the batches alone, not on the order in which workers happen to decode them."""
    state = np.random.SeedSequence(seed, spawn_key=(batch,)).generate_state(1, np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state))


def decode_items(model, sources: Items, opts: SearchOptions, batch_tokens: int = 6000,
                 device: torch.device | str = "cpu", progress: bool = False, *, batch_size: int = 0,
                 workers: int = 1, max_src_len: int = 1024) -> list[list[Hypothesis]]:
    """Hypotheses (n-best lists) for sources of any modality, in input order, in size-sorted batches.

    ``sources.lengths`` are the batching sizes; a source of size 0 gets empty output. Outputs of
    sources with a length (tokens, sequences) are capped at ``max_len_a * size + max_len_b``.
    ``batch_size`` > 0 caps the sources in a batch. ``workers`` > 1 decodes that many batches at
    once, in threads that share the model and split this process's intra-op threads (torch's
    ``get_num_threads()``) among them: on a CPU, small decoding steps use one core each better than
    two cores together (less so with bigger batches, which keep two cores busier; measured in
    benchmarks/README.md, "Two batches at a time"). The outputs are the same for any number of
    workers. Token sources longer than ``max_src_len`` are cut to it (``cap_sources``). A source
    the model scores NaN (no hypothesis left, or a NaN score) raises ``NoOutput``.
    """
    check_batching(batch_tokens, batch_size, workers, max_src_len)
    sources = cap_sources(sources, max_src_len)
    model.eval()
    lengths = sources.lengths
    results = [[Hypothesis([], 0.0, 0.0)] * opts.n_best for _ in range(len(sources))]
    batches = decode_batches(lengths, batch_tokens, batch_size, max(opts.beam, opts.n_best))
    dtype = next(model.parameters()).dtype

    @torch.inference_mode()
    def run(j: int, chunk: list[int]) -> list[list[Hypothesis]]:
        src, src_lengths = pad_items(sources, chunk, eos=False)
        src_lengths = None if src_lengths is None else src_lengths.to(device)
        sizes = None if sources.kind == "fixed" else torch.from_numpy(lengths[chunk]).to(device)
        if src.is_floating_point():  # audio, images, frames: in the weights' dtype (bf16 decoding)
            src = src.to(dtype)
        generator = batch_generator(opts.seed, j, device) if opts.sample else None
        return _search(model, src.to(device), src_lengths, opts, generator, sizes)

    for chunk, hyps in run_batches(run, batches, workers, progress):
        for i, h in zip(chunk, hyps):
            if not h or any(math.isnan(x.score) for x in h):  # beam search drops NaN, greedy keeps it
                raise NoOutput(f"input {i + 1}: no output: the model scored it NaN "
                               "(does it hold NaN weights, or overflow in bf16?)")
            results[i] = h
    return results


def run_batches(run, batches: list[list[int]], workers: int = 1, progress: bool = False):
    """(batch, run(j, batch)) for every batch, in order, with a progress bar over the inputs:
    how every inference path (token search, frame rollouts) walks its batches."""
    bar = tqdm(total=sum(map(len, batches)), unit="input", disable=not progress, leave=False, dynamic_ncols=True)
    with bar:
        for chunk, out in _in_order(run, batches, workers):
            yield chunk, out
            bar.update(len(chunk))


def _in_order(run, batches: list[list[int]], workers: int):
    """(batch, run(j, batch)) for every batch, in order; with ``workers`` > 1 from that many threads."""
    if workers == 1 or len(batches) < 2:
        yield from ((chunk, run(j, chunk)) for j, chunk in enumerate(batches))
        return
    threads = torch.get_num_threads()
    per_worker = max(1, threads // workers)
    try:
        with ThreadPoolExecutor(min(workers, len(batches)), initializer=torch.set_num_threads,
                                initargs=(per_worker,)) as pool:
            futures = [pool.submit(run, j, chunk) for j, chunk in enumerate(batches)]
            try:
                for chunk, future in zip(batches, futures):
                    yield chunk, future.result()
            finally:  # an error or an interrupt: start nothing more
                for future in futures:
                    future.cancel()
    finally:
        torch.set_num_threads(threads)  # the workers' setting is process-wide for threads started later
