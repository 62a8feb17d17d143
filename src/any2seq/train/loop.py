"""The training loop: plain, over ``model.loss(batch)``; it knows nothing of tasks or modalities.

Device, bf16 autocast and DDP stay here at the edge; validation is a callable the task hands in.
"""
from __future__ import annotations

import json
import math
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..config import TrainConfig
from ..fileio import write_error
from ..task_metrics import better
from .checkpoint import rng_states, save_checkpoint
from .distributed import Dist, all_gather, any_rank, barrier
from .optim import lr_at, set_lr


@dataclass
class TrainerState:
    """Everything besides tensors that a resumed run needs; saved as trainer.json."""

    step: int = 0
    position: list = field(default_factory=lambda: [0, 0])  # (epoch, batch index) of the next batch
    best: float | None = None
    best_step: int = 0
    bad_validations: int = 0
    elapsed_s: float = 0.0
    tokens: int = 0


class LossOf(nn.Module):
    """Makes ``model.loss`` the forward pass, so DDP can wrap it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


class StopRequest:
    """The first Ctrl-C asks the loop to save and stop after the current step; a second one aborts.

    SIGTERM (what ``kill``, schedulers and torchrun send) and SIGHUP (a closed terminal) count as
    Ctrl-C: their default action would end the run without a checkpoint of its last steps. A signal
    the process was started ignoring (``nohup`` ignores SIGHUP) stays ignored.
    """

    SIGNALS = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS
                         if signal.getsignal(signum) is not signal.SIG_IGN}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator, validate: Callable[[], dict],
        on_best: Callable[[dict], None], run_dir: Path, cfg: TrainConfig, dist: Dist, state: TrainerState,
        d_model: int = 512, progress: bool = True) -> tuple[TrainerState, str]:
    """Train until a limit is reached; returns the final state and why it stopped.

    ``cfg`` comes resolved by the caller (runner.py): ``precision`` bf16 trains under bf16 autocast
    (anything else in float32), and ``metric`` is one that ``validate`` reports ("" means the loss)."""
    run_dir = Path(run_dir)
    module = LossOf(model)
    if dist.world > 1:
        module = DistributedDataParallel(module, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    autocast = torch.autocast(dist.device.type, dtype=torch.bfloat16) if cfg.precision == "bf16" else nullcontext()
    log = open(run_dir / "metrics.jsonl", "a", encoding="utf-8") if dist.main else None
    bar = tqdm(total=cfg.max_steps or None, initial=state.step, disable=not (progress and dist.main),
               unit="step", dynamic_ncols=True, mininterval=1 if sys.stderr.isatty() else 60)  # logs stay short
    started, window_start = time.monotonic() - state.elapsed_s, time.monotonic()
    window_tokens, window_local = 0, 0  # global tokens (for speed) and this rank's (for the loss)
    window_loss = torch.zeros((), device=dist.device)  # summed on the device: no host sync per step
    # A resumed run that already reached its limits stops here rather than train one step past them.
    reason = _limit(cfg, state, False, dist)
    model.train()
    with StopRequest() as stop:
        while not reason:
            micro = [next(batches) for _ in range(cfg.accum)]
            n_global = sum(b.n_tokens for b in micro)
            optimizer.zero_grad(set_to_none=True)
            for i, batch in enumerate(micro):
                shard = batch.shard(dist.rank, dist.world, cfg.pad_to).to(dist.device)
                sync = nullcontext() if dist.world == 1 or i == len(micro) - 1 else module.no_sync()
                with sync, autocast:
                    loss_sum, _ = module(shard)
                # DDP averages gradients over ranks; scaling by world / n_global makes the result the
                # gradient of the mean loss over the whole global batch, as in a single process.
                (loss_sum * (dist.world / n_global)).backward()
                window_loss += loss_sum.detach()
                window_local += shard.n_tokens
            state.step += 1
            set_lr(optimizer, lr_at(state.step, cfg, d_model))
            if cfg.clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip)
            optimizer.step()
            state.position = list(batches.position)
            state.tokens += n_global
            window_tokens += n_global
            bar.update(1)
            state.elapsed_s = time.monotonic() - started
            if state.step % cfg.log_every == 0:
                now = time.monotonic()
                record = {"step": state.step, "epoch": state.position[0], "lr": optimizer.param_groups[0]["lr"],
                          "loss": float(window_loss) / max(window_local, 1), "tok_s": window_tokens / (now - window_start),
                          "elapsed_s": round(state.elapsed_s, 1)}
                postfix = dict(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.2e}", tok_s=f"{record['tok_s']:.0f}")
                if cfg.max_minutes:  # a time budget has no step total for tqdm's ETA: show what is left
                    postfix["left"] = _clock(60 * cfg.max_minutes - state.elapsed_s)
                bar.set_postfix(postfix, refresh=False)  # drawn at the next refresh, not one line per log
                _write(log, record)
                window_tokens, window_local, window_start = 0, 0, now
                window_loss.zero_()
            reason = _limit(cfg, state, stop.requested, dist)
            if state.step % cfg.valid_every == 0 or reason:
                reason = _validate_and_save(model, optimizer, validate, on_best, run_dir, cfg, dist, state, log) or reason
                model.train()
                window_start = time.monotonic()  # speed is measured on training time only
    bar.close()
    if log:
        log.close()
    return state, reason


def _limit(cfg: TrainConfig, state: TrainerState, interrupted: bool, dist: Dist) -> str:
    """Why training should stop now ('' to go on); every rank gets the same answer."""
    if interrupted:
        reason = "interrupted"
    elif cfg.max_steps and state.step >= cfg.max_steps:
        reason = "max_steps"
    elif cfg.max_epochs and state.position[0] >= cfg.max_epochs:
        reason = "max_epochs"
    elif cfg.max_minutes and state.elapsed_s >= 60 * cfg.max_minutes:
        reason = "max_minutes"
    else:
        reason = ""
    if dist.world > 1 and any_rank(reason != "", dist) and not reason:
        reason = "another rank stopped"
    return reason


def _validate_and_save(model, optimizer, validate, on_best, run_dir, cfg, dist, state, log) -> str:
    """Validate on rank 0, keep the best weights, write a checkpoint; '' unless early stopping fires."""
    reason = ""
    # Each rank drew its own dropout masks (its shard's shapes differ), so each rank's RNG is saved.
    rng = {f"rng.{rank}.{name}": t for name, local in rng_states(dist.device).items()
           for rank, t in enumerate(all_gather(local, dist))}
    if dist.main:
        model.eval()
        with torch.no_grad():
            metrics = validate()
        metric = cfg.metric or "loss"
        value = metrics[metric]
        if math.isfinite(value) and better(metric, value, state.best):
            state.best, state.best_step, state.bad_validations = value, state.step, 0
            on_best(metrics)
        else:
            state.bad_validations += 1
        _write(log, {"step": state.step, **{f"valid_{k}": v for k, v in metrics.items()},
                     "best": state.best, "elapsed_s": round(state.elapsed_s, 1)})
        tqdm.write(f"any2seq: step {state.step}: " + ", ".join(f"valid {k} {v:.3f}" for k, v in metrics.items()
                                                       if isinstance(v, float)), file=sys.stderr)
        save_checkpoint(run_dir, state.step, model, optimizer, state.__dict__, cfg.keep_last, rng)
        if cfg.patience and state.bad_validations >= cfg.patience:
            reason = "early_stopping"
    barrier(dist)
    return "early_stopping" if any_rank(reason != "", dist) else ""


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _write(log, record: dict) -> None:
    if log is not None:
        try:
            log.write(json.dumps(record) + "\n")
            log.flush()
        except OSError as e:  # a full disk: the checkpoints on it are still whole
            raise write_error(log.name, e) from None
