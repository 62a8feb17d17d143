"""Which validation metrics each task reports, which way each is better, and which one picks a
task's best checkpoint unless ``train.metric`` says otherwise.

Kept free of torch so that a config naming a metric its task does not report is refused the
moment it loads. The tasks' ``make_validate`` functions report exactly these keys (a test holds
them to it).
"""
from __future__ import annotations

HIGHER_IS_BETTER = {"bleu": True, "chrf": True, "exact": True, "coverage": True, "ssim": True,
                    "loss": False, "wer": False, "cer": False, "mse": False}

# task -> (the default metric, every metric its validation reports)
TASK_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "translation": ("bleu", ("bleu", "chrf", "loss")),
    "text_generation": ("bleu", ("bleu", "coverage", "loss")),
    "captioning": ("bleu", ("bleu", "exact", "loss")),
    "speech": ("wer", ("wer", "cer", "loss")),
    "video_prediction": ("mse", ("mse", "ssim", "loss")),
    "text_to_video": ("mse", ("mse", "ssim", "loss")),
}


def better(metric: str, value: float, best: float | None) -> bool:
    """Whether ``value`` improves on ``best`` (None: nothing yet) for ``metric``."""
    return best is None or (value > best if HIGHER_IS_BETTER[metric] else value < best)


def selected_metric(task: str, metric: str, decode: bool) -> str:
    """The metric that picks the best checkpoint: ``train.metric``, else the task's default, else
    the loss when validation does not decode (``train.valid_bleu: false``)."""
    return metric or (TASK_METRICS[task][0] if decode else "loss")
