"""The TASKS table: what each task's data, metrics and inputs are. A new task is one row here."""
from __future__ import annotations

from .base import Task, Tokenizers
from .captioning import Captioning
from .speech import Speech
from .text_generation import TextGeneration
from .translation import Translation
from .video import TextToVideo, VideoPrediction

TASKS: dict[str, Task] = {
    "translation": Translation(),
    "text_generation": TextGeneration(),
    "captioning": Captioning(),
    "speech": Speech(),
    "video_prediction": VideoPrediction(),
    "text_to_video": TextToVideo(),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r} (tasks: {', '.join(TASKS)})") from None


__all__ = ["TASKS", "Task", "Tokenizers", "get_task"]
