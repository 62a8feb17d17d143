"""AdamW (Loshchilov & Hutter, 2019) and learning-rate schedules with warmup, as pure functions of the step."""
from __future__ import annotations

import math

import torch

from ..config import TrainConfig


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = list({id(p): p for p in model.parameters() if p.requires_grad}.values())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]  # biases and norms are not decayed
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # the fused kernel (one pass per parameter for all of Adam's updates) where torch has one
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=1e-9, fused=fused, foreach=None if fused else True)


def lr_at(step: int, cfg: TrainConfig, d_model: int = 512) -> float:
    """The learning rate for optimiser step ``step`` (1-based)."""
    warm = max(cfg.warmup, 1)
    if cfg.schedule == "constant":
        return cfg.lr * min(1.0, step / warm)
    if cfg.schedule == "inverse_sqrt":  # linear warmup to lr, then lr * sqrt(warmup / step)
        return cfg.lr * min(step / warm, math.sqrt(warm / step))
    if cfg.schedule == "noam":  # Vaswani et al. (2017): lr is a factor on d_model^-0.5
        return cfg.lr * d_model ** -0.5 * min(step ** -0.5, step * warm ** -1.5)
    total = max(cfg.max_steps, warm + 1)  # cosine: decay to min_lr by max_steps
    if step <= warm:
        return cfg.lr * step / warm
    progress = min(1.0, (step - warm) / (total - warm))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
