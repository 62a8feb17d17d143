"""Figures for the README from trained runs:

    python docs/figures.py captioning runs/captioning
    python docs/figures.py text_to_video runs/text_to_video_warp
    python docs/figures.py video_prediction runs/video_prediction_warp_rollout
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import any2seq  # noqa: E402
from any2seq.data.video import write_gif  # noqa: E402
from any2seq.tasks import get_task  # noqa: E402

TEXTS = ("digit 7 moving right slowly", "digit 2 moving down-left quickly", "digit 5 moving up quickly",
         "digit 9 moving left slowly")


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


def text_to_video(model_dir: str, out: str = "docs/text_to_video.gif") -> None:
    """An animated GIF of the clips the model makes for ``TEXTS``, side by side, as `predict` makes them."""
    clips = [r["frames"] for r in any2seq.load(model_dir).predict(list(TEXTS))]  # each (T, C, H, W)
    write_gif(out, _side_by_side(clips), duration_ms=200, scale=3)
    print(out, "|", " | ".join(TEXTS))


def video_prediction(model_dir: str, out: str = "docs/video_prediction.gif", n: int = 4) -> None:
    """An animated GIF of the first ``n`` test clips: above, the input then the true future; below,
    the input then the model's prediction."""
    model = any2seq.load(model_dir)
    sources, true = get_task("video_prediction").examples(model.cfg, "test")
    _, predicted = model.evaluate("test")
    pairs = [np.concatenate([np.concatenate([s, t]), np.concatenate([s, p])], axis=-2)  # (T, C, 2H, W)
             for s, t, p in zip(sources[:n], true[:n], predicted[:n])]
    write_gif(out, _side_by_side(pairs), duration_ms=200, scale=3)
    print(out)


def _side_by_side(clips: list) -> np.ndarray:
    """Clips (T, C, H, W) of one length -> one (T, C, H, n*W + gaps) with a grey line between them."""
    gap = np.full((*clips[0].shape[:3], 1), 0.5, np.float32)
    return np.concatenate([x for clip in clips for x in (clip, gap)][:-1], axis=-1)


if __name__ == "__main__":
    {"captioning": captioning, "text_to_video": text_to_video,
     "video_prediction": video_prediction}[sys.argv[1]](*sys.argv[2:])
