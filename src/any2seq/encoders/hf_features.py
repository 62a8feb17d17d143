"""What an HF encoder's processor does to its input, as modules inside ``forward``: images resized to
the model's size and normalised, waveforms resampled to the model's rate (soxr) and normalised
(wav2vec2), Whisper's log-mel over a fixed 30 s window (Radford et al., 2022), token ids with their
attention mask (BERT). Each returns the HF model's keyword inputs and the (B,) count of real
positions in the model's output (None: every position is real)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..interfaces import lengths_to_mask


class ImageInput(nn.Module):
    """(B, C, H, W) images in [0, 1] -> ``pixel_values``: channels repeated (grey) or averaged to the
    model's, resized to its ``image_size`` (bilinear), normalised with its processor's mean and std."""

    def __init__(self, channels: int, size: int, mean, std):
        super().__init__()
        self.channels, self.size = channels, size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, src: Tensor, src_lengths=None) -> tuple[dict, None]:
        x = src.float()  # (B, C, H, W)
        if x.size(1) != self.channels:
            x = x.mean(1, keepdim=True).expand(-1, self.channels, -1, -1)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return {"pixel_values": (x - self.mean) / self.std}, None


def resample(src: Tensor, lengths: Tensor, rate: int, model_rate: int) -> tuple[Tensor, Tensor]:
    """(B, N) waveforms at ``rate`` -> (B, N') at ``model_rate`` and their (B,) lengths, with soxr (the
    resampler ``data/audio_io.py`` uses), row by row over the real samples only."""
    if rate in (0, model_rate):
        return src, lengths
    import soxr

    rows = [soxr.resample(src[i, : int(n)].detach().float().cpu().numpy(), rate, model_rate, quality="HQ")
            for i, n in enumerate(lengths)]
    out = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return torch.from_numpy(out).to(src.device), torch.tensor([len(r) for r in rows], device=src.device)


class WaveformInput(nn.Module):
    """(B, N) waveforms -> wav2vec2's ``input_values``: resampled, each utterance normalised to zero
    mean and unit variance over its real samples (``do_normalize``), padding zeroed. The attention mask
    goes in only where the processor returns one: models with group norm in their first convolution
    (wav2vec2-base) were trained on zero-padded batches without it."""

    def __init__(self, rate: int, model_rate: int, normalize: bool, attention_mask: bool, kernels, strides):
        super().__init__()
        self.rate, self.model_rate, self.normalize, self.attention_mask = rate, model_rate, normalize, attention_mask
        self.convs = list(zip(kernels, strides))
        self.min_samples = 1  # the convolutions' receptive field: shorter input is padded with zeros to it
        for kernel, stride in reversed(self.convs):
            self.min_samples = (self.min_samples - 1) * stride + kernel

    def output_lengths(self, samples: Tensor) -> Tensor:
        """(B,) samples -> (B,) positions after the convolutional feature encoder (no padding)."""
        for kernel, stride in self.convs:
            samples = torch.div(samples - kernel, stride, rounding_mode="floor") + 1
        return samples.clamp(min=1)

    def forward(self, src: Tensor, src_lengths: Tensor) -> tuple[dict, Tensor]:
        x, lengths = resample(src, src_lengths, self.rate, self.model_rate)
        mask = lengths_to_mask(lengths, x.size(1))  # (B, N)
        x = x.float() * mask
        if self.normalize:
            n = lengths[:, None].float()
            mean = x.sum(1, keepdim=True) / n
            var = ((x - mean) ** 2 * mask).sum(1, keepdim=True) / n
            x = (x - mean) / torch.sqrt(var + 1e-7) * mask
        inputs = {"input_values": F.pad(x, (0, max(0, self.min_samples - x.size(1))))}
        if self.attention_mask:
            inputs["attention_mask"] = F.pad(mask, (0, inputs["input_values"].size(1) - x.size(1))).long()
        return inputs, self.output_lengths(lengths)


class WhisperInput(nn.Module):
    """(B, N) waveforms -> Whisper's ``input_features`` (B, n_mels, frames): resampled, cut or padded
    with zeros to the fixed window the encoder's positions cover (3000 frames of 10 ms for Whisper),
    log10 mel power, floored 8 below each utterance's peak, scaled as (x + 4) / 4, as
    ``WhisperFeatureExtractor`` computes it. ``mel`` is its filter bank (n_fft // 2 + 1, n_mels)."""

    def __init__(self, rate: int, model_rate: int, n_fft: int, hop: int, frames: int, mel: np.ndarray):
        super().__init__()
        self.rate, self.model_rate, self.n_fft, self.hop, self.frames = rate, model_rate, n_fft, hop, frames
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("mel", torch.from_numpy(np.asarray(mel, dtype=np.float32)), persistent=False)

    def forward(self, src: Tensor, src_lengths: Tensor) -> tuple[dict, Tensor]:
        x, lengths = resample(src, src_lengths, self.rate, self.model_rate)
        samples = self.frames * self.hop  # 30 s at 16 kHz for Whisper; longer input is cut, as HF's truncation
        x, lengths = x[:, :samples].float(), lengths.clamp(max=samples)
        x = F.pad(x * lengths_to_mask(lengths, x.size(1)), (0, samples - x.size(1)))  # (B, samples)
        with torch.autocast(x.device.type, enabled=False):  # powers span 1e-10..1e3: keep float32
            spec = torch.stft(x, self.n_fft, self.hop, window=self.window, return_complex=True)  # (B, F, frames + 1)
            power = spec[..., :-1].abs() ** 2
            log_spec = torch.clamp(self.mel.T @ power, min=1e-10).log10()  # (B, n_mels, frames)
            peak = log_spec.amax(dim=(1, 2), keepdim=True)
            features = (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0
        # two convolutions, the second with stride 2: a position per two frames
        positions = torch.div(torch.div(lengths, self.hop, rounding_mode="floor") + 2, 2, rounding_mode="floor")
        return {"input_features": features}, positions.clamp(min=1, max=self.frames // 2)


class TextInput(nn.Module):
    """(B, S) ids from the model's own tokenizer -> ``input_ids`` with the attention mask (and zero
    token types); sources longer than the model's position table are cut to it."""

    def __init__(self, max_positions: int):
        super().__init__()
        self.max_positions = max_positions

    def forward(self, src: Tensor, src_lengths: Tensor) -> tuple[dict, Tensor]:
        src, lengths = src[:, : self.max_positions], src_lengths.clamp(max=self.max_positions)
        mask = lengths_to_mask(lengths, src.size(1))
        return {"input_ids": src, "attention_mask": mask.long(), "token_type_ids": torch.zeros_like(src)}, lengths
