"""Reading the recordings people make: WAV of any sample width and channel count (parsed here,
bounded by the bytes at hand), FLAC, OGG and the other formats libsndfile reads (through
``soundfile``), mixed down to mono and resampled to the model's rate with soxr's anti-aliasing
resampler. Everything here reads untrusted input: every failure is a one-line ``UserError``."""
from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fileio import read_regular

MAX_BYTES = 256 * 2**20  # an audio file's size
MAX_SAMPLES = 2**25  # decoded samples, all channels together: ~5.8 minutes of 48 kHz stereo
MAX_CHANNELS = 64
RATES = (1000, 768_000)  # the sample rates accepted; below 1 kHz a "recording" would be a resampling bomb
PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE  # WAV format tags
_noted: set[str] = set()  # the conversions already reported, so each is said once per process


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def read_audio(source, sample_rate: int = 8000, name: str | None = None) -> np.ndarray:
    """A recording (a path, or bytes of an upload) -> (N,) float32 mono at ``sample_rate``, in [-1, 1].

    Any channel count is averaged to mono; any other rate is resampled (soxr, high quality), and
    the first conversion of each kind is reported once on stderr. Unreadable input raises a
    one-line UserError naming the file, or ``name`` for bytes.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, data = name or "<uploaded audio>", bytes(source)
    else:
        name = name or str(source)
        data = _read_file(Path(source), name)
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        samples, rate, kind = parse_wav(data, name)
    else:
        samples, rate, kind = _read_soundfile(data, name)
    return to_model_rate(samples, rate, sample_rate, kind, name)


def _read_file(path: Path, name: str) -> bytes:
    """The file's bytes: a regular file (a FIFO would hang, /dev/zero never end) of at most MAX_BYTES."""
    missing = f"no such {'WAV' if path.suffix.lower() == '.wav' else 'audio'} file"
    return read_regular(path, MAX_BYTES, name, missing, "audio file")


def _chunks(data: bytes):
    """(id, start, size) of each RIFF chunk; ``size`` as the header says, which may pass the end."""
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset: offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        yield chunk_id, offset + 8, size
        offset += 8 + size + (size & 1)  # chunks are padded to an even length


def parse_wav(data: bytes, name: str) -> tuple[np.ndarray, int, str]:
    """A RIFF/WAVE file's samples (frames, channels) float32, its rate and a description.

    Integer PCM of 8, 16, 24 or 32 bits and IEEE float of 32 or 64 bits, plain or
    WAVE_FORMAT_EXTENSIBLE. Sizes are checked against the bytes present before anything is
    allocated, so a lying header costs nothing.
    """
    fmt = audio = None
    for chunk_id, start, size in _chunks(data):
        if chunk_id == b"fmt " and fmt is None:
            fmt = data[start: start + size]
        elif chunk_id == b"data" and audio is None:
            audio = (start, size)
    if fmt is None or len(fmt) < 16:
        raise UserError(f"{name}: not a readable WAV file (no complete fmt chunk)")
    tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]  # the sub-format GUID starts with the plain tag
    if (tag, bits) not in {(PCM, 8), (PCM, 16), (PCM, 24), (PCM, 32), (FLOAT, 32), (FLOAT, 64)}:
        what = f"{bits}-bit integer" if tag == PCM else f"{bits}-bit float" if tag == FLOAT else f"format tag {tag}"
        raise UserError(f"{name}: {what} WAV samples; any2seq reads 8/16/24/32-bit integer or 32/64-bit float WAV")
    if not 1 <= channels <= MAX_CHANNELS or block != channels * bits // 8:
        raise UserError(f"{name}: not a readable WAV file ({channels} channels, {block}-byte frames)")
    if audio is None:
        raise UserError(f"{name}: not a readable WAV file (no data chunk)")
    start, size = audio
    frames, held = size // block, max(0, len(data) - start) // block
    if held < frames:  # the data chunk's size in the header promises more than the file holds
        raise UserError(f"{name}: truncated WAV (header says {frames} frames, file holds {held})")
    check_size(frames, channels, rate, name)
    raw = data[start: start + frames * block]
    if tag == FLOAT:
        samples = np.nan_to_num(np.frombuffer(raw, f"<f{bits // 8}"), nan=0.0, posinf=1.0, neginf=-1.0)
        samples = np.clip(samples, -1.0, 1.0).astype(np.float32)
    elif bits == 8:  # unsigned, centred on 128
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif bits == 24:  # no numpy dtype: three little-endian bytes, sign-extended through the top of an int32
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        samples = (((b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)) >> 8).astype(np.float32) / 2.0**23
    else:
        samples = np.frombuffer(raw, f"<i{bits // 8}").astype(np.float32) / 2.0 ** (bits - 1)
    kind = f"{bits}-bit {'float' if tag == FLOAT else 'integer'} WAV"
    return samples.reshape(frames, channels), rate, kind


def check_size(frames: int, channels: int, rate: int, name: str) -> None:
    if frames == 0:
        raise UserError(f"{name}: empty audio (0 frames)")
    if not RATES[0] <= rate <= RATES[1]:
        raise UserError(f"{name}: sample rate {rate} Hz; any2seq reads {RATES[0]} to {RATES[1]} Hz")
    if frames * channels > MAX_SAMPLES:
        raise UserError(f"{name}: {frames} frames x {channels} channels, more than the limit of {MAX_SAMPLES} "
                        f"samples (about {MAX_SAMPLES // 96000 // 60} minutes of 48 kHz stereo)")


def _read_soundfile(data: bytes, name: str) -> tuple[np.ndarray, int, str]:
    """FLAC, OGG (Vorbis, Opus) and the other formats libsndfile reads -> (frames, channels) float32."""
    import soundfile

    refused = f"{name}: not a readable WAV, FLAC or OGG file"
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            channels, rate, kind = f.channels, f.samplerate, f"{f.format} {f.subtype_info}".strip()
            if not 1 <= channels <= MAX_CHANNELS:
                raise UserError(f"{refused} ({channels} channels)")
            check_size(max(f.frames, 1), channels, rate, name)  # the header's count; the read is bounded too
            samples = f.read(frames=min(f.frames, MAX_SAMPLES // channels), dtype="float32", always_2d=True)
    except UserError:
        raise
    except (RuntimeError, ValueError, TypeError, OSError, EOFError, OverflowError, MemoryError) as e:
        # soundfile's LibsndfileError is a RuntimeError ("Format not recognised", "Unspecified internal error")
        raise UserError(f"{refused} ({_one_line(e)})") from None
    if len(samples) == 0:
        raise UserError(f"{name}: empty audio (0 frames)")
    return np.clip(np.nan_to_num(samples, nan=0.0), -1.0, 1.0), rate, kind


def to_model_rate(samples: np.ndarray, rate: int, sample_rate: int, kind: str, name: str) -> np.ndarray:
    """(frames, channels) at ``rate`` -> (N,) mono at ``sample_rate``; a conversion is reported once."""
    channels = samples.shape[1]
    mono = samples[:, 0] if channels == 1 else samples.mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        import soxr  # band-limited: content above the new Nyquist frequency is filtered out, not folded in

        mono = np.clip(soxr.resample(mono, rate, sample_rate, quality="HQ"), -1.0, 1.0).astype(np.float32)
        if len(mono) == 0:
            raise UserError(f"{name}: too short to resample ({len(samples)} frames at {rate} Hz)")
    if rate != sample_rate or channels != 1:
        done = [f"resampled {rate} -> {sample_rate} Hz"] if rate != sample_rate else []
        done += [f"{channels} channels averaged"] if channels != 1 else []
        note = f"any2seq: this model hears {sample_rate} Hz mono; {kind} at {rate} Hz: {', '.join(done)}"
        if note not in _noted:
            _noted.add(note)
            print(note, file=sys.stderr)
    return np.ascontiguousarray(mono, dtype=np.float32)
