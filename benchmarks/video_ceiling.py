"""How well a video-prediction model could do on the moving-digit clips, and how far one is from it.

The clips follow a known rule (src/any2seq/data/video.py): each digit moves in a straight line at
1-2.5 pixels a frame, is folded back at the edges, and is drawn at its corner rounded to whole
pixels. The best sharp guess of the future from the frames seen is then: per axis, every start and
velocity of the generator's prior that reproduces the digit's seen corners exactly, and at each
future frame the commonest of their corners; the digits are drawn there with their true scans, so
only the motion is guessed. Rounding hides where between two pixels a digit is, so even this guess
misses some corners, more of them the further ahead it looks. The axes are matched apart (the speed
ties them), so this ideal knows a little less than the generator: a floor under the best possible.

Prints, per predicted frame, the share of digits the ideal puts at exactly the right corner, its
SSIM, copy-last-frame's, and with --model the model's, on the config's test clips.

    python benchmarks/video_ceiling.py
    python benchmarks/video_ceiling.py --model runs/video_prediction_warp_rollout --out ceiling.json
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from any2seq.config import load_config
from any2seq.data.video import SPEED, bounce, moving_layout, paste, scaled_scans
from any2seq.metrics import ssim

ROOT = Path(__file__).resolve().parents[1]


def prior_paths(n: int, frames: int, room: int, seed: int = 0) -> np.ndarray:
    """(n, frames, 2) integer corners of digits drawn from ``moving_layout``'s prior."""
    rng = np.random.default_rng(seed)
    angle, speed = rng.uniform(0, 2 * np.pi, n), rng.uniform(*SPEED, n)
    velocity = speed[:, None] * np.stack([np.sin(angle), np.cos(angle)], 1)
    start = rng.uniform(0, room, (n, 2))
    return bounce(start, velocity, frames, room)


class IdealMotion:
    """Per axis, the prior's paths grouped by their first ``seen`` corners: what a digit seen there
    may do next, in the proportions the generator would make it do it."""

    def __init__(self, paths: np.ndarray, seen: int, room: int):
        self.paths, self.seen, self.room = paths, seen, room
        self.by_history = [defaultdict(list), defaultdict(list)]
        for axis in (0, 1):
            for i, history in enumerate(paths[:, :seen, axis]):
                self.by_history[axis][history.tobytes()].append(i)

    def guess(self, corners: np.ndarray) -> tuple[np.ndarray, bool]:
        """(frames, 2) true corners -> (frames - seen, 2) the commonest future corner per frame and
        axis among the paths that agree with the seen ones, and whether every axis found some (an
        axis that found none keeps the last step's motion, clipped to the room)."""
        future = np.zeros((len(corners) - self.seen, 2), np.int64)
        found = True
        for axis in (0, 1):
            hits = self.by_history[axis].get(corners[: self.seen, axis].astype(np.int64).tobytes())
            if hits:
                ahead = self.paths[hits, self.seen:, axis]  # (h, future)
                future[:, axis] = [np.bincount(column, minlength=self.room + 1).argmax() for column in ahead.T]
            else:
                found = False
                last, step = corners[self.seen - 1, axis], corners[self.seen - 1, axis] - corners[self.seen - 2, axis]
                future[:, axis] = np.clip(last + step * np.arange(1, len(future) + 1), 0, self.room)
        return future, found


def draw(placed, corners_of, frames: int, canvas: int, scans: np.ndarray) -> np.ndarray:
    """(frames, 1, canvas, canvas): each placed (scan, corners) digit drawn at ``corners_of(corners)``."""
    clip = np.zeros((frames, 1, canvas, canvas), np.float32)
    for scan, corners in placed:
        paste(clip, scans[scan], corners_of(corners))
    return clip


def model_frames(model_dir: Path, seen: np.ndarray, future: int) -> np.ndarray:
    """A trained frame model's rollout from the seen frames (n, F, 1, H, W)."""
    import torch

    import any2seq

    model = any2seq.load(model_dir, dtype="fp32").model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(seen), 50):
            src = torch.from_numpy(seen[i: i + 50])
            lengths = torch.full((len(src),), src.size(1))
            out.append(model.rollout(src, lengths, future, tuple(seen.shape[2:])).numpy())
    return np.concatenate(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "video_prediction_warp.yaml",
                    help="a video_prediction config: its data section says which clips")
    ap.add_argument("--model", type=Path, help="a trained video_prediction model to score beside the ideal")
    ap.add_argument("--clips", type=int, help="test clips (default: the config's data.n_test)")
    ap.add_argument("--paths", type=int, default=2_000_000, help="paths drawn from the prior")
    ap.add_argument("--out", type=Path, help="write the table as JSON here")
    args = ap.parse_args(argv)
    d = load_config(args.config).data
    n, frames, room = args.clips or d.n_test, d.frames_in + d.frames_out, d.canvas - d.digit_size
    layout = moving_layout("test", n, d.seed, frames, d.canvas, tuple(range(1, d.max_digits + 1)), d.digit_size)
    scans, _ = scaled_scans("test", d.digit_size)
    ideal = IdealMotion(prior_paths(args.paths, frames, room), d.frames_in, room)
    true, guessed = np.zeros((2, n, d.frames_out, 1, d.canvas, d.canvas), np.float32)
    exact, digits, found = np.zeros(d.frames_out), 0, 0
    for c, placed in enumerate(layout):
        guesses = {}
        for scan, corners in placed:
            future, ok = ideal.guess(corners)
            guesses[id(corners)] = future
            exact += (future == corners[d.frames_in:]).all(1)
            digits, found = digits + 1, found + ok
        true[c] = draw(placed, lambda k: k[d.frames_in:], d.frames_out, d.canvas, scans)
        guessed[c] = draw(placed, lambda k: guesses[id(k)], d.frames_out, d.canvas, scans)
    seen = np.stack([draw(placed, lambda k: k[: d.frames_in], d.frames_in, d.canvas, scans) for placed in layout])

    def per_frame(pred: np.ndarray) -> np.ndarray:
        frames = (-1, 1, d.canvas, d.canvas)
        return ssim(pred.reshape(frames), true.reshape(frames)).reshape(n, -1).mean(0)

    rows = {"ideal_exact": exact / digits, "ideal_ssim": per_frame(guessed),
            "copy_last_ssim": per_frame(np.repeat(seen[:, -1:], d.frames_out, 1))}
    if args.model:
        rows["model_ssim"] = per_frame(model_frames(args.model, seen, d.frames_out))
    heads = {"ideal_exact": "ideal: corner exact", "ideal_ssim": "ideal SSIM", "copy_last_ssim": "copy-last SSIM",
             "model_ssim": f"{args.model} SSIM"}
    unseen = digits - found
    print(f"{n} test clips, {digits} digits ({unseen} with an axis the {args.paths:,} prior paths never showed)\n")
    print("| frame | " + " | ".join(heads[k] for k in rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for t in range(d.frames_out):
        print(f"| {t + 1} | " + " | ".join(f"{rows[k][t]:.3f}" for k in rows) + " |")
    print("| mean | " + " | ".join(f"**{rows[k].mean():.3f}**" for k in rows) + " |")
    if args.out:
        args.out.write_text(json.dumps({"clips": n, "digits": digits, "paths": args.paths,
                                        **{k: [round(float(x), 4) for x in v] for k, v in rows.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
