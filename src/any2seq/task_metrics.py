"""Which way a validation metric is better, and which one picks a task's best checkpoint unless
``train.metric`` says otherwise: both from the registry (a metric's ``MetricPart``, a task's
``TaskPart.metrics``, whose first entry is its default). The tasks' ``make_validate`` functions
report exactly their declared metrics (a test holds them to it).
"""
from __future__ import annotations

from . import registry


def better(metric: str, value: float, best: float | None) -> bool:
    """Whether ``value`` improves on ``best`` (None: nothing yet) for ``metric``."""
    return best is None or (value > best if registry.higher_is_better(metric) else value < best)


def selected_metric(task: str, metric: str, decode: bool) -> str:
    """The metric that picks the best checkpoint: ``train.metric``, else the task's default, else
    the loss when validation does not decode (``train.valid_bleu: false``)."""
    return metric or (registry.task(task).metrics[0] if decode else "loss")


def __getattr__(name: str):
    """``HIGHER_IS_BETTER`` and ``TASK_METRICS``, the tables earlier versions kept here, derived from the registry."""
    if name == "HIGHER_IS_BETTER":
        return {metric: part.higher_is_better for metric, part in registry.parts("metric").items()}
    if name == "TASK_METRICS":  # task -> (its default metric, every metric it reports)
        return {task: (part.metrics[0], part.metrics) for task, part in registry.parts("task").items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
