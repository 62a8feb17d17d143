"""The speech encoder: shapes, lengths, padding invariance, SpecAugment in training only, gradients."""
from __future__ import annotations

import typing

import pytest
import torch

from any2seq.encoders.audio import (AudioEncoder, AudioEncoderConfig, frames_after, mel_filterbank, spec_augment,
                                    vtlp_warp)
from any2seq.config_checks import Invalid
from any2seq.interfaces import Memory

HOP = 16
STACKS = typing.get_args(typing.get_type_hints(AudioEncoderConfig)["stack"])  # every stack a config may name


def encoder(stack: str = "transformer", subsample: int = 4, masks: int = 2, dropout: float = 0.0,
            vtlp: float = 0.0) -> AudioEncoder:
    torch.manual_seed(0)
    return AudioEncoder(sample_rate=8000, n_fft=64, hop=HOP, n_mels=16, freq_masks=masks, freq_mask_width=4,
                        time_masks=masks, time_mask_width=6, subsample=subsample, stack=stack, d_model=32,
                        layers=2, heads=2, ff=64, dropout=dropout, vtlp=vtlp)


def batch(lengths: list[int], extra: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random waveforms (B, max + extra) in [-0.5, 0.5], noise past each length (it must not matter)."""
    g = torch.Generator().manual_seed(1)
    src = torch.rand(len(lengths), max(lengths) + extra, generator=g) - 0.5
    return src, torch.tensor(lengths)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("subsample", [1, 2, 4, 8])
def test_shapes_and_mask_match_output_lengths(stack, subsample):
    enc = encoder(stack, subsample).eval()
    src, lengths = batch([1, HOP - 1, HOP, HOP + 1, 333, 800], extra=7)
    memory = enc(src, lengths)
    assert isinstance(memory, Memory) and memory.final is None
    expected = enc.output_lengths(lengths)
    assert memory.states.shape == (6, int(enc.output_lengths(torch.tensor([src.size(1)]))), enc.out_dim)
    assert memory.mask.dtype == torch.bool and memory.mask.shape == memory.states.shape[:2]
    assert torch.equal(memory.mask.sum(1), expected)
    assert memory.mask[:, 0].all()  # even a one-sample utterance has a position


def test_output_lengths_formula():
    samples = torch.tensor([0, 1, 79, 80, 81, 159, 160, 24000])
    assert torch.equal(frames_after(samples, 80, 1), 1 + samples // 80)  # centred STFT framing
    assert torch.equal(frames_after(samples, 80, 4), (((1 + samples // 80) + 1) // 2 + 1) // 2)
    assert int(frames_after(torch.tensor([24000]), 80, 4)) == 76  # 3 s at 8 kHz: 301 frames -> 76


@pytest.mark.parametrize("stack", STACKS)
def test_padding_never_changes_the_encoding(stack):
    enc = encoder(stack).eval()
    src, lengths = batch([700, 333, 64, 5], extra=50)
    with torch.no_grad():
        memory = enc(src, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = enc(src[i: i + 1, :n], lengths[i: i + 1])
            S = int(alone.mask.sum())
            assert S == int(memory.mask[i].sum())
            torch.testing.assert_close(memory.states[i, :S], alone.states[0], atol=1e-5, rtol=1e-5)


def test_features_are_normalised_over_real_frames_only():
    enc = encoder().eval()
    src, lengths = batch([800, 300], extra=40)
    feats, frames = enc.features(src, lengths)
    assert torch.equal(frames, 1 + lengths // HOP)
    assert (feats[1, int(frames[1]):] == 0).all()
    for i, n in enumerate(frames.tolist()):
        real = feats[i, :n]  # (T, M)
        torch.testing.assert_close(real.mean(0), torch.zeros(16), atol=1e-4, rtol=0)
        torch.testing.assert_close(real.std(0, unbiased=False), torch.ones(16), atol=1e-2, rtol=0)


def test_every_mel_filter_sees_some_frequency():
    fb = mel_filterbank(8000, 256, 64)  # the recipe's defaults
    assert fb.shape == (129, 64) and (fb >= 0).all() and (fb.sum(0) > 0).all()


@pytest.mark.parametrize("alpha", [0.8, 0.9, 1.1, 1.2])
def test_vtlp_warp_scales_low_frequencies_and_keeps_the_band(alpha):
    freqs = torch.linspace(0, 4000, 401, dtype=torch.float64)
    warped = vtlp_warp(freqs, alpha, 4000.0)
    assert warped[0] == 0 and abs(float(warped[-1]) - 4000) < 1e-9  # nothing leaves the spectrum
    assert (warped.diff() > 0).all()  # monotonic: no two frequencies swap
    low = freqs < 2000
    torch.testing.assert_close(warped[low], freqs[low] * alpha)  # formants move by alpha


def test_vtlp_filterbank_moves_each_filter_by_the_warp():
    sample_rate, n_fft = 8000, 256
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    plain, higher = mel_filterbank(sample_rate, n_fft, 32), mel_filterbank(sample_rate, n_fft, 32, warp=1.2)
    centre = (plain * bins[:, None]).sum(0) / plain.sum(0)  # (M,) each filter's mean frequency
    seen = (higher * bins[:, None]).sum(0) / higher.sum(0)
    low = centre < 2000  # below the warp's knee a filter listens 1.2 times lower in the spectrum
    torch.testing.assert_close(seen[low] * 1.2, centre[low], rtol=0.05, atol=20.0)
    assert torch.equal(mel_filterbank(sample_rate, n_fft, 32, warp=1.0), plain)


def test_vtlp_only_in_training():
    warped, plain = encoder(masks=0, vtlp=0.2), encoder(masks=0)
    assert warped.warped_mels.shape == (9, 33, 16) and plain.warped_mels.numel() == 0
    assert "warped_mels" not in warped.state_dict()  # made at build, never saved
    src, lengths = batch([800, 500])
    torch.testing.assert_close(warped.eval()(src, lengths).states, plain.eval()(src, lengths).states)
    warped.train()
    feats = {tuple(warped.features(src, lengths)[0][0, :, 3].tolist()) for _ in range(12)}
    assert len(feats) > 1  # each draw may warp the utterance differently
    with pytest.raises(Invalid, match="0.5"):
        AudioEncoderConfig(vtlp=0.5).check()


def masked_features() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    lengths = torch.tensor([50, 40, 30, 20, 10, 5, 2, 1])
    feats = torch.randn(8, 50, 16) + 10  # nothing is zero before masking, except padding
    return feats * (torch.arange(50)[None, :, None] < lengths[:, None, None]), lengths


@pytest.mark.parametrize("vtlp", [0.0, 0.1])
def test_a_bf16_model_computes_its_features_in_float32(vtlp):
    """Decoding in bf16 casts the buffers too (window, filterbanks); the features must not care."""
    enc32 = encoder(vtlp=vtlp).eval()
    enc16 = encoder(vtlp=vtlp).eval().to(torch.bfloat16)
    src, lengths = batch([200, 333])
    feats32, _ = enc32.features(src, lengths)
    feats16, _ = enc16.features(src, lengths)
    assert feats16.dtype == torch.float32
    torch.testing.assert_close(feats16, feats32, atol=0.05, rtol=0.05)  # bf16 filters: ~3 significant digits
    assert enc16.train()(src.bfloat16(), lengths).states.dtype == torch.bfloat16


def test_spec_augment_frequency_masks_are_whole_bands():
    feats, lengths = masked_features()
    out = spec_augment(feats, lengths, freq_masks=2, freq_width=4, time_masks=0, time_width=6)
    zeroed = (out == 0) & (feats != 0)
    assert torch.equal(out[~zeroed], feats[~zeroed])  # only masks: the rest is untouched
    for i, n in enumerate(lengths.tolist()):
        band = zeroed[i, 0]  # (M,) the bins masked in the first frame are masked in every real frame
        assert (zeroed[i, :n] == band[None, :]).all() and band.sum() <= 2 * 4
    assert zeroed.any()


def test_spec_augment_time_masks_are_spans_inside_the_utterance():
    _, lengths = masked_features()
    feats = torch.randn(8, 50, 16) + 10  # nonzero padding too, to see that no mask reaches it
    out = spec_augment(feats, lengths, freq_masks=0, freq_width=4, time_masks=2, time_width=6)
    zeroed = (out == 0) & (feats != 0)
    assert torch.equal(out[~zeroed], feats[~zeroed])
    for i, n in enumerate(lengths.tolist()):
        span = zeroed[i, :, 0]  # (T,) frames masked in the first bin are masked in every bin
        assert (zeroed[i] == span[:, None]).all() and span.sum() <= 2 * 6 and not span[n:].any()
    assert zeroed.any()


def test_spec_augment_and_dropout_only_in_training():
    enc = encoder(masks=2, dropout=0.0)
    src, lengths = batch([800, 500])
    enc.eval()
    a, b = enc(src, lengths).states, enc(src, lengths).states
    assert torch.equal(a, b)
    enc.train()
    torch.manual_seed(3)
    assert not torch.allclose(enc(src, lengths).states, a)  # masked features
    unmasked = encoder(masks=0, dropout=0.0).train()
    torch.testing.assert_close(unmasked(src, lengths).states, unmasked.eval()(src, lengths).states)


@pytest.mark.parametrize("stack", STACKS)
def test_gradients_reach_every_parameter(stack):
    enc = encoder(stack, dropout=0.1).train()
    src, lengths = batch([800, 500])
    memory = enc(src, lengths)
    (memory.states * memory.mask[..., None]).pow(2).mean().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_bad_arguments():
    with pytest.raises(ValueError, match="stack"):
        AudioEncoder(8000, 64, 16, 16, 0, 0, 0, 0, 4, "lstm", 32, 1, 2, 64, 0.0)
    with pytest.raises(ValueError, match="power of two"):
        AudioEncoder(8000, 64, 16, 16, 0, 0, 0, 0, 3, "gru", 32, 1, 2, 64, 0.0)
