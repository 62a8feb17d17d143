"""Speech encoder: log-mel features, SpecAugment (Park et al., 2019), strided-convolution
subsampling (as in Speech-Transformer, Dong et al., 2018), then a Transformer or BiGRU stack."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..config_checks import attention_sizes, require, sizes
from ..interfaces import Encoder, EncoderConfig, Memory, lengths_to_mask
from ..nn.dropout import Dropout
from ..nn.embedding import sinusoids
from ..nn.transformer import EncoderLayer
from ..registry import EncoderPart, Sizes

VTLP_STEPS = 9  # warp factors precomputed, evenly spaced in [1 - vtlp, 1 + vtlp]
CONV_CHANNELS = 32  # channels of the subsampling convolutions: 256 would cost 3x the whole stack on CPU
# log(mel + 1e-3): silence stays finite, and digital zeros land near a quiet room's noise floor
# instead of ~10 nats below it, which per-utterance normalisation would stretch into the speech range
LOG_FLOOR = 1e-3


def hz_to_mel(f):
    return 2595.0 * torch.log10(1.0 + f / 700.0)  # the HTK formula (Young et al., The HTK Book)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def vtlp_warp(freqs: Tensor, alpha: float, nyquist: float, boundary: float = 0.8) -> Tensor:
    """Frequencies scaled by ``alpha`` as a vocal tract ``alpha`` times shorter would place them
    (vocal tract length perturbation, Jaitly & Hinton, 2013): linear up to a boundary, then a
    second line that keeps Nyquist at Nyquist, so no band leaves the spectrum or stays empty."""
    knee = boundary * nyquist * min(alpha, 1.0) / alpha  # input frequency where the slope changes
    high = nyquist - (nyquist - boundary * nyquist * min(alpha, 1.0)) / (nyquist - knee) * (nyquist - freqs)
    return torch.where(freqs <= knee, freqs * alpha, high)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, warp: float = 1.0) -> Tensor:
    """(n_fft // 2 + 1, n_mels) triangular filters, equally spaced on the HTK mel scale, 0 to Nyquist.

    ``warp`` != 1 reads each FFT bin at its VTLP-warped frequency: the filters then see the
    spectrum of a speaker whose formants sit ``warp`` times higher."""
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (F,) Hz
    if warp != 1.0:
        bins = vtlp_warp(bins, warp, sample_rate / 2)
    edges = mel_to_hz(torch.linspace(0, float(hz_to_mel(torch.tensor(sample_rate / 2.0))), n_mels + 2,
                                     dtype=torch.float64))  # (M + 2,) Hz
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]  # (M,) each
    up = (bins[:, None] - lo) / (mid - lo)  # (F, M) rising edge
    down = (hi - bins[:, None]) / (hi - mid)  # (F, M) falling edge
    return torch.clamp(torch.minimum(up, down), min=0).float()


def frames_after(samples: Tensor, hop: int, subsample: int) -> Tensor:
    """(B,) samples -> (B,) encoder positions: centred STFT framing, then ceil(L / 2) per conv."""
    frames = 1 + torch.div(samples, hop, rounding_mode="floor")
    for _ in range(int(math.log2(subsample))):
        frames = torch.div(frames + 1, 2, rounding_mode="floor")
    return frames


def spec_augment(feats: Tensor, lengths: Tensor, freq_masks: int, freq_width: int,
                 time_masks: int, time_width: int) -> Tensor:
    """Zero random mel bands and time spans of (B, T, M) normalised features (zero = the mean).

    Widths are drawn uniformly from [0, width]; time masks stay inside each utterance's real
    frames and are no wider than it (the paper's upper bound p * tau, with p = 1).
    """
    B, T, M = feats.shape
    keep = torch.ones(B, T, M, dtype=torch.bool, device=feats.device)
    for _ in range(freq_masks):
        width = torch.randint(0, min(freq_width, M) + 1, (B,), device=feats.device)  # (B,)
        start = (torch.rand(B, device=feats.device) * (M - width + 1)).long()  # (B,) in [0, M - width]
        band = torch.arange(M, device=feats.device)[None, :]  # (1, M)
        keep &= ~((band >= start[:, None]) & (band < (start + width)[:, None]))[:, None, :]
    for _ in range(time_masks):
        width = (torch.rand(B, device=feats.device) * (torch.clamp(lengths, max=time_width) + 1)).long()
        start = (torch.rand(B, device=feats.device) * (lengths - width + 1)).long()
        span = torch.arange(T, device=feats.device)[None, :]  # (1, T)
        keep &= ~((span >= start[:, None]) & (span < (start + width)[:, None]))[:, :, None]
    return feats * keep


class TransformerStack(nn.Module):
    """Sinusoidal positions, pre-LN Transformer layers and a final LayerNorm."""

    def __init__(self, d_model: int, layers: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.drop = Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, ff, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.scale = math.sqrt(d_model)  # else the positions drown the features (as in ESPnet's subsampling)

    def forward(self, x: Tensor, lengths: Tensor, mask: Tensor) -> Tensor:  # (B, S, D), (B,), (B, S)
        x = self.drop(x * self.scale + sinusoids(x.size(1), x.size(2)).to(x))  # scaled as token embeddings are
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class GRUStack(nn.Module):
    """A bidirectional GRU stack projected back to d_model; the recurrence needs no positions, and
    packing keeps padding out of it."""

    def __init__(self, d_model: int, layers: int, heads: int, ff: int, dropout: float):
        super().__init__()  # heads and ff belong to the Transformer stack; a GRU has no use for them
        self.drop = Dropout(dropout)
        self.rnn = nn.GRU(d_model, d_model, layers, batch_first=True, bidirectional=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.out = nn.Linear(2 * d_model, d_model)

    def forward(self, x: Tensor, lengths: Tensor, mask: Tensor) -> Tensor:  # (B, S, D), (B,), (B, S)
        packed = pack_padded_sequence(self.drop(x), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))  # (B, S, 2D)
        return self.out(self.drop(out))


STACKS = {"transformer": TransformerStack, "gru": GRUStack}


class AudioEncoder(Encoder):
    """(B, N) waveform and (B,) lengths in samples -> Memory over (B, S', d_model), S' ~ N / (hop * subsample)."""

    def __init__(self, sample_rate: int, n_fft: int, hop: int, n_mels: int, freq_masks: int,
                 freq_mask_width: int, time_masks: int, time_mask_width: int, subsample: int, stack: str,
                 d_model: int, layers: int, heads: int, ff: int, dropout: float, vtlp: float = 0.0):
        super().__init__()
        if stack not in STACKS:
            raise ValueError(f"stack must be one of {sorted(STACKS)}, got {stack!r}")
        if subsample < 1 or subsample & (subsample - 1):
            raise ValueError(f"subsample must be a power of two, got {subsample}")
        self.n_fft, self.hop, self.subsample = n_fft, hop, subsample
        self.masks = (freq_masks, freq_mask_width, time_masks, time_mask_width)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("mel", mel_filterbank(sample_rate, n_fft, n_mels), persistent=False)
        # training draws one of these per utterance; the filterbanks are fixed, so none is learned or saved
        warps = torch.linspace(1 - vtlp, 1 + vtlp, VTLP_STEPS).tolist() if vtlp > 0 else []
        self.register_buffer("warped_mels", torch.stack([mel_filterbank(sample_rate, n_fft, n_mels, a) for a in warps])
                             if warps else torch.empty(0), persistent=False)  # (K, F, M)
        self.convs = nn.ModuleList()
        channels, height = 1, n_mels
        for _ in range(int(math.log2(subsample))):
            self.convs.append(nn.Conv2d(channels, CONV_CHANNELS, 3, stride=2, padding=1))
            channels, height = CONV_CHANNELS, (height + 1) // 2
        self.proj = nn.Linear(channels * height, d_model)
        self.stack = STACKS[stack](d_model, layers, heads=heads, ff=ff, dropout=dropout)
        self.out_dim = d_model

    def output_lengths(self, samples: Tensor) -> Tensor:
        """(B,) lengths in samples -> (B,) lengths of the encoder's output (its mask's row sums)."""
        return frames_after(samples, self.hop, self.subsample)

    def features(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, N) waveform -> (B, T, n_mels) log-mel features normalised per utterance, and (B,) frames.

        Samples past each length are zeroed and the STFT pads with zeros (not reflection), so an
        utterance's frames are the same alone or inside a padded batch.
        """
        lengths = 1 + torch.div(src_lengths, self.hop, rounding_mode="floor")  # (B,)
        src = src.float() * lengths_to_mask(src_lengths, src.size(1))
        # powers span ~1e-12..1e3: keep float32, also when the model's buffers were cast to bf16
        with torch.autocast(src.device.type, enabled=False):
            spec = torch.stft(src, self.n_fft, self.hop, window=self.window.float(), center=True,
                              pad_mode="constant", return_complex=True)  # (B, F, T)
            power = spec.real ** 2 + spec.imag ** 2
            feats = torch.log(power.transpose(1, 2) @ self.filterbanks(src.size(0)).float() + LOG_FLOOR)  # (B, T, M)
        mask = lengths_to_mask(lengths, feats.size(1))[:, :, None].to(feats.dtype)  # (B, T, 1)
        n = lengths[:, None, None].to(feats.dtype)
        mean = (feats * mask).sum(1, keepdim=True) / n  # (B, 1, M) over real frames only
        var = ((feats - mean) ** 2 * mask).sum(1, keepdim=True) / n
        return (feats - mean) / torch.sqrt(var + 1e-5) * mask, lengths

    def filterbanks(self, batch: int) -> Tensor:
        """(F, M) mel filters, or in training with VTLP (B, F, M): a random warp per utterance."""
        if not (self.training and self.warped_mels.numel()):
            return self.mel
        return self.warped_mels[torch.randint(0, self.warped_mels.size(0), (batch,), device=self.mel.device)]

    def subsample_frames(self, feats: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, M) -> (B, T', C * M'); padded positions are zeroed after every convolution so
        that the last real outputs see zeros there, exactly as the convolution's own padding."""
        x = feats[:, None]  # (B, 1, T, M)
        for conv in self.convs:
            x = F.relu(conv(x))  # (B, C, ceil(T / 2), ceil(M / 2))
            lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
            x = x * lengths_to_mask(lengths, x.size(2))[:, None, :, None].to(x.dtype)
        B, C, T, M = x.shape
        return x.permute(0, 2, 1, 3).reshape(B, T, C * M), lengths

    def forward(self, src: Tensor, src_lengths: Tensor) -> Memory:  # (B, N), (B,)
        feats, lengths = self.features(src, src_lengths)  # (B, T, M)
        if self.training:  # augmentation, like dropout; the masks below still come from lengths
            feats = spec_augment(feats, lengths, *self.masks)
        # features are float32; a model cast to bf16 for decoding takes them in its own dtype
        x, lengths = self.subsample_frames(feats.to(self.proj.weight.dtype), lengths)  # (B, S, C * M')
        mask = lengths_to_mask(lengths, x.size(1))  # (B, S)
        x = self.stack(self.proj(x), lengths, mask)  # (B, S, D)
        return Memory(x, mask)  # (B, S, D), (B, S)


@dataclass(frozen=True)
class AudioEncoderConfig(EncoderConfig):
    """Log-mel features, SpecAugment, convolutional subsampling, then a Transformer or GRU stack."""
    kind: Literal["audio"] = "audio"
    sample_rate: int = 8000
    n_fft: int = 256
    hop: int = 80  # 10 ms at 8 kHz
    n_mels: int = 64
    freq_masks: int = 2  # SpecAugment (training only)
    freq_mask_width: int = 8
    time_masks: int = 2
    time_mask_width: int = 20
    subsample: int = 4  # time reduction by strided convolutions: 1, 2, 4 or 8
    stack: Literal["transformer", "gru"] = "transformer"
    d_model: int = 256
    layers: int = 4
    heads: int = 4
    ff: int = 1024
    dropout: float = 0.1
    vtlp: float = 0.0  # training: each utterance's frequencies warped by a factor in [1 - vtlp, 1 + vtlp]

    def memory_length(self, size: int) -> int:
        return 1 + size // (self.hop * self.subsample)  # frames_after's: ceil(f / 2) per conv is ceil(f / subsample)

    def check(self):
        require(self.subsample in (1, 2, 4, 8), "subsample", f"must be 1, 2, 4 or 8, got {self.subsample}")
        attention_sizes(self)
        sizes(self, "sample_rate", high=384_000)
        sizes(self, "n_fft n_mels", high=1 << 16)
        require(0 < self.hop <= self.n_fft, "hop", f"must be in (0, n_fft={self.n_fft}]")
        sizes(self, "freq_masks freq_mask_width time_masks time_mask_width", low=0, high=1 << 16)
        require(0.0 <= self.vtlp < 0.5, "vtlp", f"must be in [0, 0.5), got {self.vtlp}")


def build(cfg: AudioEncoderConfig, dims: Sizes) -> AudioEncoder:
    return AudioEncoder(cfg.sample_rate, cfg.n_fft, cfg.hop, cfg.n_mels, freq_masks=cfg.freq_masks,
                        freq_mask_width=cfg.freq_mask_width, time_masks=cfg.time_masks,
                        time_mask_width=cfg.time_mask_width, subsample=cfg.subsample, stack=cfg.stack,
                        d_model=cfg.d_model, layers=cfg.layers, heads=cfg.heads, ff=cfg.ff, dropout=cfg.dropout,
                        vtlp=cfg.vtlp)


AUDIO = EncoderPart(AudioEncoderConfig, build)
