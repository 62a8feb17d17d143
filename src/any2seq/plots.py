"""Training curves from a run's metrics.jsonl, and cross-attention heatmaps, as PNGs (matplotlib, headless)."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError


def read_metrics(run_dir: Path) -> tuple[list[dict], list[dict]]:
    train, valid = [], []
    path = Path(run_dir) / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # e.g. the last line of a run killed while writing it
                continue
            if not isinstance(record, dict) or not isinstance(record.get("step"), (int, float)):
                continue
            if any(k.startswith("valid_") for k in record):
                valid.append(record)
            elif "loss" in record and "lr" in record:
                train.append(record)
    return train, valid


def run_metrics(run_dir: Path, valid: list[dict]) -> list[str]:
    """The validation metrics to plot besides the loss: the run's task's (its registered metrics), else
    whatever numbers the records hold."""
    from . import registry
    from .modeldir import read_config

    try:
        task = read_config(Path(run_dir)).task
    except UserError:  # no config (a bare metrics file) or one this version cannot read
        task = None
    if task in registry.names("task"):
        return [m for m in registry.task(task).metrics if m != "loss"]
    return sorted({k.removeprefix("valid_") for r in valid for k, v in r.items()
                   if k.startswith("valid_") and k != "valid_loss" and isinstance(v, (int, float))})


def plot_curves(run_dir: Path, out: Path | None = None) -> Path | None:
    """Loss, learning rate and each of the task's validation metrics against steps; the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import registry
    from .fileio import atomic_write

    train, valid = read_metrics(run_dir)
    if not train and not valid:
        return None
    metrics = run_metrics(run_dir, valid)
    fig, axes = plt.subplots(1, 2 + len(metrics), figsize=(4.4 * (2 + len(metrics)), 3.6), squeeze=False)
    axes = axes[0]
    axes[0].plot([r["step"] for r in train], [r["loss"] for r in train], label="train (smoothed CE)")
    points = [(r["step"], r["valid_loss"]) for r in valid if "valid_loss" in r]
    axes[0].plot([s for s, _ in points], [v for _, v in points], "o-", label="valid")
    axes[0].set(title="loss per token", xlabel="step")
    axes[0].legend()
    axes[1].plot([r["step"] for r in train], [r["lr"] for r in train])
    axes[1].set(title="learning rate", xlabel="step")
    for ax, metric in zip(axes[2:], metrics):
        points = [(r["step"], r[f"valid_{metric}"]) for r in valid if isinstance(r.get(f"valid_{metric}"), (int, float))]
        if points:
            ax.plot(*zip(*points), "o-")
        arrow = {True: " (higher is better)", False: " (lower is better)"}.get(
            registry.higher_is_better(metric) if metric in registry.names("metric") else None, "")
        ax.set(title=f"valid {metric}{arrow}", xlabel="step")
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "curves.png"
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(out, buf.getvalue())
    return out


def select_attention(weights, layer: int | None = None, head: int | None = None):
    """(layers, heads, T, S) -> (T, S): one layer and head, or the average over those not chosen."""
    import numpy as np

    weights = np.asarray(weights, dtype=np.float32)
    for axis, (index, flag, name) in enumerate(((layer, "--layer", "layers"), (head, "--head", "heads"))):
        size = weights.shape[axis]
        if index is not None and not 0 <= index < size:
            raise UserError(f"{flag}: {index} is out of range (the model has {size} {name}, counted from 0)")
    weights = weights.mean(0) if layer is None else weights[layer]
    return weights.mean(0) if head is None else weights[head]


def plot_attention(maps: dict, path: Path, layer: int | None = None, head: int | None = None) -> Path:
    """A heatmap of ``attention.attention_maps``'s output: output pieces down, source positions across."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fileio import atomic_write

    grid = select_attention(maps["weights"], layer, head)  # (T, S)
    src, tgt = maps["src_labels"], maps["tgt_labels"]
    T, S = grid.shape
    fig, ax = plt.subplots(figsize=(min(2 + 0.35 * S, 24), min(1.5 + 0.3 * T, 24)))
    image = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=max(float(grid.max(initial=0.0)), 1e-6), aspect="auto")
    ax.set_xticks(range(S), src, rotation=90, fontsize=8)
    ax.set_yticks(range(T), tgt, fontsize=8)
    which = f"layer {'avg' if layer is None else layer}, head {'avg' if head is None else head}"
    ax.set(xlabel="source", ylabel="output", title=f"cross-attention ({which})")
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    path = Path(path)
    atomic_write(path, buf.getvalue())
    return path


def cmd_plot_curves(run_dir: Path, out: Path | None = None) -> int:
    """``any2seq plot curves``: the run's curves as a PNG (default RUN/curves.png); prints its path."""
    from .fileio import writable_dir

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    if not (run_dir / "metrics.jsonl").is_file():
        raise UserError(f"{run_dir}: no metrics.jsonl (is it a run directory written by `any2seq train`?)")
    out = Path(out) if out else run_dir / "curves.png"
    if out.is_dir():
        raise UserError(f"--out {out}: is a directory; name a PNG file")
    writable_dir(out.parent, name=f"--out {out}")
    path = plot_curves(run_dir, out)
    if path is None:
        raise UserError(f"{run_dir / 'metrics.jsonl'}: no training records to plot yet")
    print(path)
    return 0
