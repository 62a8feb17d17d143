"""The video-prediction ceiling (benchmarks/video_ceiling.py): its prior's paths follow the clips' rule,
drawing the true corners gives back the clips, and the ideal guess of the motion beats copying the last
frame and grows less sure the further it looks. Checks the table's shape and order, not its figures."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from any2seq.data.video import moving_digits, moving_layout, scaled_scans

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("video_ceiling", REPO / "benchmarks" / "video_ceiling.py")
ceiling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ceiling)


def test_prior_paths_stay_in_the_room_and_move_at_the_clips_speeds():
    paths = ceiling.prior_paths(1000, 20, 16)
    assert paths.shape == (1000, 20, 2) and paths.min() >= 0 and paths.max() <= 16
    first = np.abs(np.diff(paths[:, :2], axis=1)).max(-1)[:, 0]  # a first step is at most 2.5 rounded, 3
    assert first.max() <= 3


def test_the_true_corners_draw_the_clips_back():
    layout = moving_layout("test", 6, 0)
    scans, _ = scaled_scans("test", 16)
    drawn = np.stack([ceiling.draw(placed, lambda corners: corners, 20, 32, scans) for placed in layout])
    assert np.array_equal(drawn, moving_digits("test", 6, 0))


def test_the_ideal_beats_copy_last_and_is_surer_of_the_next_frame_than_the_tenth(tmp_path, capsys):
    out = tmp_path / "ceiling.json"
    assert ceiling.main(["--clips", "40", "--paths", "200000", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["clips"] == 40 and len(report["ideal_ssim"]) == 10
    assert np.mean(report["ideal_ssim"]) > np.mean(report["copy_last_ssim"]) + 0.2
    assert report["ideal_exact"][0] > report["ideal_exact"][-1]
    assert "| mean |" in capsys.readouterr().out
