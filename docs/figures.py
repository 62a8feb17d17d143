"""Figures for the README from trained runs: `python docs/figures.py captioning runs/captioning`."""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import any2seq  # noqa: E402
from any2seq.tasks import get_task  # noqa: E402


def captioning(model_dir: str, out: str = "docs/captioning_examples.png", n: int = 6) -> None:
    """The first ``n`` test scenes with the model's caption (green: exact, red: not) and the truth."""
    model = any2seq.load(model_dir)
    images, truths = get_task("captioning").examples(model.cfg, "test")
    outputs = [r["outputs"][0]["text"] for r in model.predict(list(images[:n]))]
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 4.2))
    for ax, image, said, truth in zip(axes, images, outputs, truths):
        ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title("\n".join(said.split(" and ")), fontsize=8, color="green" if said == truth else "red")
        if said != truth:
            ax.set_xlabel("truth:\n" + "\n".join(truth.split(" and ")), fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90, bbox_inches="tight")
    print(out)


if __name__ == "__main__":
    {"captioning": captioning}[sys.argv[1]](*sys.argv[2:])
