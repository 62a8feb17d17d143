"""The digit reader that judges generated frames (reader.py) and the frame tasks' reader and motion
metrics: true frames read well, blank and grey frames read as no digit, the reader is trained on
training scans only, deterministically, and cached in a file that is loaded, never unpickled."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from any2seq import reader
from any2seq.config import load_config
from any2seq.data.video import DIRECTIONS
from any2seq.metrics import ink_centroids, motion_classes
from any2seq.tasks import get_task

TINY = "configs/tiny/{}.yaml"


def task_and_split(name: str, *overrides: str):
    cfg = load_config(TINY.format(name), ["data.n_test=200", *overrides])
    task = get_task(name)
    sources, true = task.examples(cfg, "test")
    return task, cfg, sources, true


@pytest.fixture(autouse=True)
def repo_root(monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[1])


def test_video_prediction_reader_reads_true_frames_and_not_blank_or_grey_ones():
    task, cfg, sources, true = task_and_split("video_prediction", "data.max_digits=2")
    metrics = task.score(true, true, sources, cfg, "test")
    # 16-pixel frames of 8-pixel digits, 200 clips: 0.89 of the counted digits in the last frame
    # (the full recipe's 32/16 frames, 500 clips: 0.90). Chance is 0.1.
    assert metrics["reader_true_acc"] > 0.8 and metrics["reader_digits"] > 150
    assert metrics["reader_acc"] == 1.0 and metrics["reader_frame"] == cfg.data.frames_out
    assert metrics["mean_frame_reader_acc"] < 0.05
    for fill in (0.0, 0.3):  # a blank and an all-grey prediction
        assert task.score(np.full_like(true, fill), true, sources, cfg, "test")["reader_acc"] < 0.05


def test_video_prediction_reads_the_last_frame_only():
    task, cfg, sources, true = task_and_split("video_prediction")
    pred = true.copy()
    pred[:, :-1] = 0  # every frame but the last blank: the reading is unchanged
    assert task.score(pred, true, sources, cfg, "test")["reader_acc"] == 1.0
    pred = true.copy()
    pred[:, -1] = 0
    assert task.score(pred, true, sources, cfg, "test")["reader_acc"] < 0.05


def test_text_to_video_reads_the_digit_and_its_motion():
    task, cfg, texts, true = task_and_split("text_to_video")
    metrics = task.score(true, true, texts, cfg, "test")
    assert metrics["reader_true_acc"] > 0.8  # 0.98 here (200 clips, 16/8), 0.98 on the recipe's 500 clips of 32/16 frames
    assert metrics["reader_acc"] == 1.0 and metrics["direction_acc"] == 1.0 and metrics["speed_acc"] == 1.0
    for fill in (0.0, 0.3):
        still = task.score(np.full_like(true, fill), true, texts, cfg, "test")
        assert still["reader_acc"] < 0.05 and still["direction_acc"] == 0 and still["speed_acc"] == 0
    reversed_ = task.score(true[:, ::-1].copy(), true, texts, cfg, "test")  # the same digit, moving backwards
    assert reversed_["reader_acc"] == 1.0 and reversed_["direction_acc"] == 0 and reversed_["speed_acc"] == 1.0


def test_motion_classes_from_the_ink_centroid():
    clip = np.zeros((3, 5, 1, 16, 16), np.float32)
    for t in range(5):
        clip[0, t, 0, 2:6, 2 + 2 * t: 6 + 2 * t] = 1  # 8 pixels right: all of an 8-pixel room
        clip[1, t, 0, 2 + t: 6 + t, 10 - t: 14 - t] = 1  # 4 down and 4 left: half the room
        clip[2, t, 0, 5:9, 5:9] = 1  # still
    assert motion_classes(clip, DIRECTIONS, room=8) == (["right", "down-left", None], ["quickly", "slowly", None])
    assert np.isnan(ink_centroids(np.zeros((1, 4, 4)))).all()


def test_reader_trains_on_training_scans_only(monkeypatch):
    seen = []
    real = reader.scaled_scans

    def spy(split, size):
        seen.append(split)
        return real(split, size)

    monkeypatch.setattr(reader, "scaled_scans", spy)
    reader.render_training_set(16, 8, 20, seed=0)
    assert seen == ["train"]


def test_reader_is_deterministic_and_cached_as_safetensors(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setitem(reader.RECIPE, "examples", 256)  # a small recipe: a different cache key too
    monkeypatch.setitem(reader.RECIPE, "epochs", 1)
    reader.load_reader.cache_clear()
    try:
        first = reader.load_reader(16, 8)
        path = reader.cache_path(16, 8)
        assert path.parent == tmp_path / "any2seq" and path.read_bytes()[8:9] == b"{"  # safetensors' JSON header
        again = reader.train_reader(16, 8)
        for (name, a), b in zip(first.state_dict().items(), again.state_dict().values()):
            assert torch.equal(a, b), name
        reader.load_reader.cache_clear()
        loaded = reader.load_reader(16, 8)
        assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), loaded.state_dict().values()))
        path.write_bytes(b"not a tensor file")  # a damaged cache is retrained and rewritten
        reader.load_reader.cache_clear()
        reader.load_reader(16, 8)
        assert path.read_bytes()[8:9] == b"{"
    finally:
        reader.load_reader.cache_clear()  # later tests get the real recipe's reader


def test_moving_layout_is_where_moving_digits_paints():
    from any2seq.data.video import moving_digits, moving_layout, paste, scaled_scans

    clips = moving_digits("test", 12, seed=5, frames=6, canvas=16, size=8)
    images = scaled_scans("test", 8)[0]
    painted = np.zeros_like(clips)
    for i, placed in enumerate(moving_layout("test", 12, seed=5, frames=6, canvas=16, size=8)):
        for k, corners in placed:
            paste(painted[i], images[k], corners)
    np.testing.assert_array_equal(painted, clips)
