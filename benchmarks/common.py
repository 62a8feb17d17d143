"""What every system script shares: the spec, the pre-batched training data, timing, decoding in
batches of sentences, peak memory and the result file.

Only the standard library, numpy, torch and sentencepiece are imported here, so the system scripts
run in either venv (the main one with any2seq, or .bench-venv with the peers).

A system script is run as ``python benchmarks/systems/NAME.py SPEC.json OUT.json`` by the driver
(``benchmarks/run.py``), one process per system so that peak RSS is that system's own.
"""
from __future__ import annotations

import json
import math
import os
import platform
import resource
import sys
import time
import traceback
from pathlib import Path

import numpy as np

PAD, BOS, EOS, UNK = 0, 1, 2, 3  # any2seq's sentencepiece ids, which the shared tokenizer has too


def load_spec(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def setup_torch(spec: dict):
    """Threads, seed and device as the spec says; returns (torch, device)."""
    import torch

    torch.set_num_threads(int(spec["threads"]))
    torch.manual_seed(int(spec["train"]["seed"]))
    device = spec["device"]
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    return torch, torch.device(device)


def load_batches(spec: dict) -> list[dict]:
    """The training batches every system trains on, in order: dicts of numpy arrays
    ``src`` (B, S) padded with PAD, no eos; ``tgt`` (B, T) with EOS after each target, padded with PAD;
    ``src_len``, ``tgt_len`` (target tokens counting the EOS)."""
    data = np.load(spec["batches"])
    n = int(data["n_steps"])
    return [{k: data[f"{k}_{i}"] for k in ("src", "tgt", "src_len", "tgt_len")} for i in range(n)]


def inverse_sqrt(step: int, lr: float, warmup: int) -> float:
    """The learning rate at optimiser step ``step`` (1-based): any2seq's inverse_sqrt schedule."""
    warm = max(warmup, 1)
    return lr * min(step / warm, math.sqrt(warm / step))


class StepTimer:
    """Wall-clock time at the start of each step (after a device sync), and its target tokens.

    ``tok_s`` counts the steps after the first ``warmup`` ones, up to the last timestamp taken.
    """

    def __init__(self, device=None):
        self.starts: list[float] = []
        self.tokens: list[int] = []
        self.device = device

    def _sync(self):
        if self.device is not None and getattr(self.device, "type", self.device) == "cuda":
            import torch

            torch.cuda.synchronize()

    def step(self, n_tokens: int) -> None:
        """Call at the start of a step that trains on ``n_tokens`` target tokens."""
        self._sync()
        self.starts.append(time.perf_counter())
        self.tokens.append(int(n_tokens))

    def end(self) -> None:
        """Call after the last step (when the loop allows it): its time counts too."""
        self._sync()
        self.starts.append(time.perf_counter())
        self.tokens.append(0)

    def summary(self, warmup: int) -> dict:
        n = len(self.starts)
        first = min(warmup, max(n - 2, 0))
        seconds = self.starts[-1] - self.starts[first] if n >= 2 else 0.0
        tokens = sum(self.tokens[first: n - 1])
        return {"steps": sum(1 for t in self.tokens if t), "timed_steps": max(n - 1 - first, 0),
                "timed_tokens": tokens, "timed_seconds": round(seconds, 4),
                "tok_s": tokens / seconds if seconds > 0 else None,
                "total_tokens": sum(self.tokens)}


def read_lines(path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").splitlines()


def decode_in_batches(translate, lines: list[str], batch_size: int, lengths: list[int],
                      translate_all=None) -> tuple[list[str], float]:
    """Translate ``lines`` in batches of ``batch_size`` sentences, longest source first (the same
    batches for every system), after one untimed pass over the first batch (every system warms up
    alike); returns the outputs in input order and the seconds the timed pass took.

    ``translate(batch_lines, batch_indices) -> outputs``; ``lengths`` are the source lengths in
    subword tokens (the shared tokenizer), which fix the order. A system that decodes several
    batches at once (``workers``) gives ``translate_all(sorted_lines) -> outputs``: it gets the
    whole file, longest first, and cuts it into the same batches of ``batch_size`` itself.
    """
    order = sorted(range(len(lines)), key=lambda i: (-lengths[i], i))
    out = [""] * len(lines)
    warm = order[:batch_size]  # untimed: allocator pools, kernel and primitive caches, lazy imports
    translate([lines[i] for i in warm], warm)
    start = time.perf_counter()
    if translate_all is not None:
        for i, hyp in zip(order, translate_all([lines[i] for i in order])):
            out[i] = hyp
        return out, time.perf_counter() - start
    for k in range(0, len(order), batch_size):
        chunk = order[k: k + batch_size]
        for i, hyp in zip(chunk, translate([lines[i] for i in chunk], chunk)):
            out[i] = hyp
    return out, time.perf_counter() - start


def update(opt, params, loss, n_tokens: int, step: int, t: dict) -> None:
    """One optimiser step of the shared recipe: per-token loss, inverse-sqrt lr, clipping, AdamW."""
    import torch

    opt.zero_grad(set_to_none=True)
    (loss / n_tokens).backward()
    for group in opt.param_groups:
        group["lr"] = inverse_sqrt(step, t["lr"], t["lr_warmup"])
    torch.nn.utils.clip_grad_norm_(params, t["clip"])
    opt.step()


def decode_modes(system: str, translate, spec: dict, translate_all=None) -> dict:
    """Greedy, then beam search over the test lines: ``translate(batch, indices, beam) -> texts``
    (and, for a system decoding several batches at once, ``translate_all(lines, beam) -> texts``;
    see ``decode_in_batches``). Returns {"greedy": ..., "beam5": ...}, each with seconds, sentence
    count and the hypothesis file."""
    lines, lengths = read_lines(spec["test_src"]), spec["test_src_lengths"]
    out = {}
    for mode, beam in (("greedy", 1), ("beam5", spec["decode"]["beam"])):
        whole = None if translate_all is None else (lambda ls, beam=beam: translate_all(ls, beam))
        hyps, seconds = decode_in_batches(lambda b, i, beam=beam: translate(b, i, beam), lines,
                                          spec["decode"]["batch_size"], lengths, whole)
        out[mode] = {"seconds": round(seconds, 3), "sentences": len(lines),
                     "hyps": write_hyps(spec["workdir"], system, mode, hyps)}
    return out


def length_limit(src_len: int, spec: dict) -> int:
    """Output tokens allowed for a source of ``src_len`` subwords: a * len + b (any2seq's rule)."""
    d = spec["decode"]
    return max(1, min(d["max_len"], int(src_len * d["max_len_a"] + d["max_len_b"])))


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if platform.system() == "Linux" else kb / 2 ** 20


def cuda_peak_mb() -> float | None:
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return torch.cuda.max_memory_allocated() / 2 ** 20
    except Exception:  # noqa: BLE001 - memory is a nice-to-have column
        pass
    return None


def write_hyps(workdir, system: str, mode: str, hyps: list[str]) -> str:
    path = Path(workdir) / "hyps" / f"{system}.{mode}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(h.replace("\n", " ") + "\n" for h in hyps), encoding="utf-8")
    return str(path)


def versions(*modules: str) -> dict:
    out = {"python": platform.python_version()}
    for name in modules:
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "?")
        except Exception:  # noqa: BLE001
            out[name] = None
    return out


def run_system(name: str, body) -> None:
    """The ``main`` of a system script: ``body(spec) -> dict``; writes the result JSON (with peak
    memory and, on failure, the error) to argv[2] and exits 0 even on failure, so the driver can
    report it in the table."""
    spec_path, out_path = sys.argv[1], sys.argv[2]
    spec = load_spec(spec_path)
    name = spec.get("system", name)  # a variant runs its base system's script under its own name
    started = time.perf_counter()
    result: dict = {"system": name}
    try:
        result.update(body(spec))
        result["ok"] = True
    except SystemExit as e:  # a deliberate skip, e.g. a peer that is not installed
        result.update(ok=False, error=str(e.code))
    except Exception as e:  # noqa: BLE001 - the driver reports it
        traceback.print_exc()
        result.update(ok=False, error=f"{e.__class__.__name__}: {e}".splitlines()[0][:300])
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    peak = cuda_peak_mb()
    if peak is not None:
        result["cuda_peak_mb"] = round(peak, 1)
    result["wall_s"] = round(time.perf_counter() - started, 2)
    Path(out_path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def sentences_per_second(n: int, seconds: float) -> float | None:
    return n / seconds if seconds > 0 else None


__all__ = [name for name in dir() if not name.startswith("_")]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
