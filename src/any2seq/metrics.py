"""Evaluation metrics from the field's standard libraries: BLEU and chrF via sacreBLEU (Post, 2018), WER and
CER via jiwer, and frame metrics for video: MSE, SSIM, and the motion of the ink (the digit reader is reader.py)."""
from __future__ import annotations

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

from .registry import MetricPart

# what validation reports, and which way is better (the registry's metric directions)
LOSS = MetricPart("loss", higher_is_better=False)
BLEU_SCORE, CHRF_SCORE = MetricPart("bleu", True), MetricPart("chrf", True)
EXACT, COVERAGE = MetricPart("exact", True), MetricPart("coverage", True)  # captioning, text generation
WER, CER = MetricPart("wer", False), MetricPart("cer", False)
MSE, SSIM = MetricPart("mse", False), MetricPart("ssim", True)


def bleu_chrf(hyps: list[str], refs: list[str], lowercase: bool = False) -> dict:
    """Corpus BLEU and chrF on detokenized text, with sacreBLEU's reproducibility signatures."""
    bleu, chrf = BLEU(lowercase=lowercase), CHRF(lowercase=lowercase)
    b, c = bleu.corpus_score(hyps, [refs]), chrf.corpus_score(hyps, [refs])
    return {"bleu": round(b.score, 2), "chrf": round(c.score, 2),
            "signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature())}


def wer_cer(hyps: list[str], refs: list[str]) -> dict:
    """Corpus word and character error rates in percent via jiwer: (S + D + I) / reference length.

    Empty references are fine: their hypothesis words count as insertions, and with no reference
    words at all the rate is 0 when nothing was hypothesised and 100 otherwise (no division by zero).
    """
    import jiwer  # imported here: only speech recognition needs it

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    if not refs:
        return {"wer": 0.0, "cer": 0.0}

    def rate(out) -> float:
        errors = out.substitutions + out.deletions + out.insertions
        n = out.hits + out.substitutions + out.deletions  # the reference length
        return round(100.0 * errors / n, 2) if n else (100.0 if errors else 0.0)

    return {"wer": rate(jiwer.process_words(reference=refs, hypothesis=hyps)),
            "cer": rate(jiwer.process_characters(reference=refs, hypothesis=hyps))}


# ---- frame metrics (video prediction, text-to-video) ----------------------------------------------
# MSE as in Moving MNIST papers (Srivastava et al., 2015) and SSIM (Wang et al., 2004), on pixels in
# [0, 1], for predictions and targets of shape (..., C, H, W): any leading axes (sequences, frames).

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def gaussian_filter(x: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """'valid' 2-D Gaussian filtering of the last two axes, separably: (..., H, W) -> (..., H-s+1, W-s+1)."""
    taps = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * sigma ** 2))
    taps /= taps.sum()
    x = np.lib.stride_tricks.sliding_window_view(x, size, axis=-1) @ taps  # along W
    return np.lib.stride_tricks.sliding_window_view(x, size, axis=-2) @ taps  # along H


def ssim(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Mean SSIM per image (Wang et al., 2004): Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03,
    data range 1, averaged over the valid window positions and the channels. (..., C, H, W) -> (...).

    Images smaller than 11 pixels use the largest odd window that fits.
    """
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    size = min(SSIM_WINDOW, pred.shape[-1] - (1 - pred.shape[-1] % 2), pred.shape[-2] - (1 - pred.shape[-2] % 2))

    def blur(x):
        return gaussian_filter(x, size, SSIM_SIGMA)

    mu_p, mu_t = blur(pred), blur(true)
    var_p, var_t = blur(pred * pred) - mu_p ** 2, blur(true * true) - mu_t ** 2
    cov = blur(pred * true) - mu_p * mu_t
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    return ssim_map.mean(axis=(-3, -2, -1))


def frame_metrics(pred, true) -> dict:
    """Frame quality of ``pred`` against ``true``, both (..., C, H, W) with pixels in [0, 1]:

    mse: per frame the mean over its C*H*W pixels, averaged over all frames;
    mse_per_frame_sum: per frame the sum over its pixels (the figure Moving MNIST papers report);
    ssim: per frame the mean SSIM, averaged over all frames (1 = identical).
    """
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape or pred.ndim < 3:
        raise ValueError(f"prediction {pred.shape} and target {true.shape} must be equal shapes (..., C, H, W)")
    squared = ((pred - true) ** 2).reshape(-1, int(np.prod(pred.shape[-3:])))  # (frames, pixels)
    return {"mse": float(squared.mean(1).mean()), "mse_per_frame_sum": float(squared.sum(1).mean()),
            "ssim": float(ssim(pred, true).mean())}


def copy_last_baseline(inputs, n: int) -> np.ndarray:
    """The last input frame repeated ``n`` times: inputs (..., F, C, H, W) -> (..., n, C, H, W)."""
    inputs = np.asarray(inputs)
    return np.repeat(inputs[..., -1:, :, :, :], n, axis=-4)


def mean_frame_baseline(train_frames, shape) -> np.ndarray:
    """The mean training frame, (..., C, H, W) averaged over every leading axis, broadcast to ``shape``."""
    train_frames = np.asarray(train_frames, np.float32)
    mean = train_frames.reshape(-1, *train_frames.shape[-3:]).mean(0)  # (C, H, W)
    return np.broadcast_to(mean, tuple(shape)).copy()


def ink_centroids(frames) -> np.ndarray:
    """(..., 2) the intensity-weighted (y, x) centre of each frame (..., C, H, W); NaN for a frame
    with no ink. A grey haze pulls it towards the middle, as it should: the frame shows less motion."""
    frames = np.asarray(frames, np.float64).sum(axis=-3)  # (..., H, W)
    mass = frames.sum(axis=(-2, -1))
    ys, xs = np.arange(frames.shape[-2]), np.arange(frames.shape[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        y = (frames.sum(-1) * ys).sum(-1) / mass
        x = (frames.sum(-2) * xs).sum(-1) / mass
    return np.where((mass > 0)[..., None], np.stack([y, x], -1), np.nan)


def motion_classes(clips, directions: dict, room: float) -> tuple[list, list]:
    """The direction and speed class of the ink's motion from each clip's first to last frame,
    clips (N, T, C, H, W): per clip the name in ``directions`` ({name: (dy, dx)}) nearest in angle
    to the centroid's displacement, and "quickly" when it crossed at least 3/4 of ``room`` pixels
    along an axis, else "slowly" (described clips cross 1/2 or all of it: data/video.py's TRAVEL).
    A clip whose ink moved less than 1/4 of the room, or has none, gets None for both."""
    centres = ink_centroids(clips)  # (N, T, 2)
    moved = centres[:, -1] - centres[:, 0]  # (N, 2) (dy, dx)
    names = list(directions)
    units = np.array([directions[n] for n in names], np.float64)
    units /= np.linalg.norm(units, axis=1, keepdims=True)
    found, speeds = [], []
    for d in moved:
        far = np.abs(d).max() if np.isfinite(d).all() else 0.0
        if far < room / 4:
            found.append(None), speeds.append(None)
            continue
        found.append(names[int(np.argmax(units @ d))])
        speeds.append("quickly" if far >= 0.75 * room else "slowly")
    return found, speeds
