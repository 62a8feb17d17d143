"""Tasks: what each task's data, metrics and inputs are. Each task module declares its ``TaskPart``;
``components.py`` lists them and ``get_task`` finds one by name through the registry."""
from __future__ import annotations

from functools import lru_cache

from .. import registry
from .base import Task, Tokenizers


@lru_cache(maxsize=None)
def get_task(name: str) -> Task:
    """The task ``name`` (one instance per task); KeyError listing the tasks if there is none."""
    try:
        return registry.task(name).make()
    except registry.UnknownName as e:
        raise KeyError(f"unknown task {name!r} (tasks: {', '.join(e.valid)})") from None


__all__ = ["Task", "Tokenizers", "get_task"]
