"""Frame metrics: MSE in both normalisations, SSIM (Wang et al., 2004) against a direct
computation, and the copy-last-frame and mean-frame baselines."""
import numpy as np
import pytest

from any2seq.data.video import moving_digits
from any2seq.metrics import copy_last_baseline, frame_metrics, mean_frame_baseline, ssim


def test_mse_in_both_normalisations():
    true = np.zeros((2, 3, 1, 4, 5), np.float32)
    pred = true.copy()
    pred[..., 0, 0] = 1.0  # one wrong pixel in each of the 6 frames of 20 pixels
    metrics = frame_metrics(pred, true)
    assert metrics["mse"] == pytest.approx(1 / 20) and metrics["mse_per_frame_sum"] == pytest.approx(1.0)
    assert frame_metrics(np.full((4, 4, 4), 0.5), np.zeros((4, 4, 4)))["mse"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="shape"):
        frame_metrics(pred, true[:, :2])


def test_ssim_is_one_on_equal_frames_and_falls_with_noise():
    true = moving_digits("valid", 2, seed=0, frames=4)  # (2, 4, 1, 32, 32)
    assert frame_metrics(true, true)["ssim"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    scores = [frame_metrics(np.clip(true + rng.normal(0, sigma, true.shape), 0, 1), true)["ssim"]
              for sigma in (0.02, 0.1, 0.3)]
    assert 1 > scores[0] > scores[1] > scores[2] > 0
    assert ssim(true[0, :, :, :5, :7], true[0, :, :, :5, :7]) == pytest.approx(np.ones(4))  # smaller than the window


def test_ssim_equals_the_formula_at_one_window():
    rng = np.random.default_rng(1)
    a, b = rng.random((1, 11, 11)), rng.random((1, 11, 11))  # exactly one 11x11 window position
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    mu_a, mu_b = (w * a[0]).sum(), (w * b[0]).sum()
    var_a, var_b = (w * a[0] ** 2).sum() - mu_a ** 2, (w * b[0] ** 2).sum() - mu_b ** 2
    cov = (w * a[0] * b[0]).sum() - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    want = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    assert ssim(a, b) == pytest.approx(want, rel=1e-9)


def test_baselines():
    inputs = np.arange(2 * 3 * 1 * 2 * 2, dtype=np.float32).reshape(2, 3, 1, 2, 2)
    copied = copy_last_baseline(inputs, 4)
    assert copied.shape == (2, 4, 1, 2, 2) and np.array_equal(copied[:, 2], inputs[:, -1])
    assert copy_last_baseline(inputs[0], 2).shape == (2, 1, 2, 2)
    mean = mean_frame_baseline(inputs, (5, 2, 1, 2, 2))
    assert mean.shape == (5, 2, 1, 2, 2) and np.allclose(mean[3, 1], inputs.mean((0, 1)))
