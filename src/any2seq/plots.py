"""Training curves from a run's metrics.jsonl, as a PNG (matplotlib, headless)."""
from __future__ import annotations

import json
from pathlib import Path


def read_metrics(run_dir: Path) -> tuple[list[dict], list[dict]]:
    train, valid = [], []
    path = Path(run_dir) / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            (valid if any(k.startswith("valid_") for k in record) else train).append(record)
    return train, valid


def plot_curves(run_dir: Path, out: Path | None = None) -> Path | None:
    """Loss, learning rate and validation metrics against steps; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fileio import atomic_write

    train, valid = read_metrics(run_dir)
    if not train and not valid:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot([r["step"] for r in train], [r["loss"] for r in train], label="train (smoothed CE)")
    axes[0].plot([r["step"] for r in valid], [r["valid_loss"] for r in valid], "o-", label="valid")
    axes[0].set(title="loss per token", xlabel="step")
    axes[0].legend()
    axes[1].plot([r["step"] for r in train], [r["lr"] for r in train])
    axes[1].set(title="learning rate", xlabel="step")
    for key in ("valid_bleu", "valid_chrf"):
        points = [(r["step"], r[key]) for r in valid if key in r]
        if points:
            axes[2].plot(*zip(*points), "o-", label=key.removeprefix("valid_"))
    axes[2].set(title="validation", xlabel="step")
    if axes[2].lines:
        axes[2].legend()
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "curves.png"
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(out, buf.getvalue())
    return out
