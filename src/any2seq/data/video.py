"""Video data: Moving-MNIST-style sequences (Srivastava et al., 2015) of real digit scans, captioned
clips for text-to-video, and frame readers/writers (a folder of images or a GIF) via Pillow."""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageSequence

from ..errors import UserError, where
from ..fileio import MiB, atomic_write, check_regular, writable_dir
from .digits import SPLITS, digit_scans

SPEED = (1.0, 2.5)  # moving_digits: pixels per frame, drawn uniformly
DIRECTIONS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1), "up-left": (-1, -1),
              "up-right": (-1, 1), "down-left": (1, -1), "down-right": (1, 1)}  # name -> (dy, dx)
TRAVEL = {"slowly": 0.5, "quickly": 1.0}  # described_videos: share of the free room crossed per clip


@lru_cache(maxsize=8)
def scaled_scans(split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The split's 8x8 scans resized (bilinear) to (N, size, size) float32 in [0, 1], and their labels."""
    scans = digit_scans(split)
    images = [np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in scans.images]
    return np.clip(np.stack(images), 0, 1).astype(np.float32), scans.labels


def bounce(start: np.ndarray, velocity: np.ndarray, frames: int, room: int) -> np.ndarray:
    """(..., frames, 2) integer top-left corners moving from ``start`` (..., 2) at ``velocity``
    (..., 2) pixels a frame and reflecting off 0 and ``room``."""
    path = start[..., None, :] + velocity[..., None, :] * np.arange(frames)[:, None]  # unfolded straight line
    path = np.mod(path, 2 * room) if room > 0 else np.zeros_like(path)
    path = np.where(path > room, 2 * room - path, path)  # fold the line back: a bounce per edge
    return np.rint(path).astype(np.int64)


def paste(canvas: np.ndarray, digit: np.ndarray, corners: np.ndarray) -> None:
    """Overlay ``digit`` (h, w) on every frame of ``canvas`` (F, 1, S, S) at its (y, x) corner, with max()."""
    h, w = digit.shape
    for frame, (y, x) in zip(canvas, corners):
        np.maximum(frame[0, y: y + h, x: x + w], digit, out=frame[0, y: y + h, x: x + w])


def check_sizes(canvas: int, size: int) -> None:
    if not 0 < size <= canvas:
        raise ValueError(f"digit size {size} must be in 1..canvas {canvas}")


def moving_layout(split: str, n: int, seed: int, frames: int = 20, canvas: int = 32, digits=(1, 2),
                  size: int = 16) -> list[list[tuple[int, np.ndarray]]]:
    """Where ``moving_digits`` puts its digits: per sequence, per digit, (the scan's index in
    ``scaled_scans(split, size)``, its (frames, 2) integer top-left corners (y, x))."""
    check_sizes(canvas, size)
    n_scans, room = len(scaled_scans(split, size)[1]), canvas - size
    layout = []
    for i in range(n):
        rng = np.random.default_rng([seed, SPLITS.index(split), i])
        placed = []
        for _ in range(int(rng.choice(digits))):
            angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(*SPEED)
            corners = bounce(rng.uniform(0, room, 2), speed * np.array([np.sin(angle), np.cos(angle)]), frames, room)
            placed.append((int(rng.integers(n_scans)), corners))
        layout.append(placed)
    return layout


def moving_digits(split: str, n: int, seed: int, frames: int = 20, canvas: int = 32, digits=(1, 2),
                  size: int = 16) -> np.ndarray:
    """(n, frames, 1, canvas, canvas) float32 in [0, 1]: 1-2 digit scans of ``split`` that bounce.

    Each sequence draws its count from ``digits``, and per digit a scan, a start corner, a direction
    and a speed of 1-2.5 pixels a frame (``moving_layout``). Sequence i depends only on
    (split, seed, i), so a larger ``n`` extends a smaller one.
    """
    images, _ = scaled_scans(split, size)
    out = np.zeros((n, frames, 1, canvas, canvas), np.float32)
    for i, placed in enumerate(moving_layout(split, n, seed, frames, canvas, digits, size)):
        for k, corners in placed:
            paste(out[i], images[k], corners)
    return out


def described_videos(split: str, n: int, seed: int, frames: int = 10, canvas: int = 32,
                     size: int = 16) -> list[tuple[str, np.ndarray]]:
    """n (text, frames (frames, 1, canvas, canvas) float32) pairs, e.g. "digit 3 moving down-left quickly".

    One digit moves in a straight line in one of 8 directions and never bounces, so the text holds
    for the whole clip: "slowly" crosses half the free room (canvas - size) over the clip, "quickly"
    all of it, diagonals that much on each axis. The start is drawn where the whole path fits,
    which centres it on the axes it does not move along, give or take a quarter of the room.
    """
    check_sizes(canvas, size)
    images, labels = scaled_scans(split, size)
    room = canvas - size
    pairs = []
    for i in range(n):
        rng = np.random.default_rng([seed, SPLITS.index(split), i, 1])
        direction, speed = rng.choice(list(DIRECTIONS)), rng.choice(list(TRAVEL))
        step = np.array(DIRECTIONS[direction]) * TRAVEL[speed] * room / max(frames - 1, 1)  # (dy, dx)
        travel = step * (frames - 1)
        low, high = np.maximum(0, -travel), np.minimum(room, room - travel)  # the whole path fits
        still = step == 0
        low[still], high[still] = 0.25 * room, 0.75 * room
        start = rng.uniform(low, high)
        k = rng.integers(len(images))
        clip = np.zeros((frames, 1, canvas, canvas), np.float32)
        paste(clip, images[k], np.rint(start + step * np.arange(frames)[:, None]).astype(np.int64))
        pairs.append((f"digit {labels[k]} moving {direction} {speed}", clip))
    return pairs


# ---- reading frames: a folder of images or an animated image file --------------------------------

MODES = {1: "L", 3: "RGB"}
MAX_FRAMES, MAX_SIDE = 1000, 4096  # refuse before decoding: a tiny file can claim a huge image
MAX_IMAGE_BYTES = 256 * MiB  # one image or animation file


def one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def decode_frames(source, name: str, channels: int, first_only: bool) -> list[np.ndarray]:
    """Every frame of one image file (a path or a file object) as (H, W, C) uint8 arrays."""
    try:
        with Image.open(source) as image:
            if max(image.size) > MAX_SIDE or getattr(image, "n_frames", 1) > MAX_FRAMES:
                raise UserError(f"{name}: {image.width}x{image.height} pixels in {getattr(image, 'n_frames', 1)} "
                                f"frames; at most {MAX_SIDE} pixels a side and {MAX_FRAMES} frames")
            found = []
            for frame in ImageSequence.Iterator(image):
                found.append(np.asarray(frame.convert(MODES[channels])).reshape(frame.height, frame.width, channels))
                if first_only:
                    break
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow raises many types (OSError, struct.error, ...) on corrupt data
        reason = one_line(e).replace(f" {source!r}", "")  # Pillow names a file object by its repr
        raise UserError(f"{name}: not a readable image ({type(e).__name__}: {reason})") from None
    if not found:
        raise UserError(f"{name}: the image holds no frames")
    return found


def frame_files(path: Path) -> list[Path]:
    """[path] for a file, else the folder's files sorted by name, skipping dot-files and subfolders."""
    try:
        if not path.is_dir():
            return [check_regular(path, MAX_IMAGE_BYTES, where(path), missing="no such file or folder")]
        files = sorted(p for p in path.iterdir() if not p.name.startswith(".") and not p.is_dir())
    except (OSError, ValueError) as e:  # unreadable folder, name too long, NUL in the name
        raise UserError(f"{where(path)}: cannot read ({one_line(e)})") from None
    if not files:
        raise UserError(f"{where(path)}: the folder holds no image files")
    if len(files) > MAX_FRAMES:
        raise UserError(f"{where(path)}: {len(files)} files, at most {MAX_FRAMES} frames")
    return [check_regular(p, MAX_IMAGE_BYTES, where(p)) for p in files]  # a FIFO would block Pillow


def read_frames(path, channels: int = 1, size=None, name: str = "upload") -> np.ndarray:
    """(F, C, H, W) float32 in [0, 1] from a folder of image files (sorted by name, one frame each,
    dot-files and subfolders skipped), an animated GIF (any image file: all its frames), or the
    bytes of such a file (an upload, called ``name`` in errors). ``size``: an int or (H, W) to resize
    every frame to (bilinear).

    Raises ``UserError`` naming the file for a missing path, an empty folder, a file that is not a
    readable image, or frames of different sizes.
    """
    if channels not in MODES:
        raise ValueError(f"channels must be one of {sorted(MODES)}, got {channels}")
    if isinstance(path, (bytes, bytearray)):
        named = [(name, decode_frames(io.BytesIO(path), name, channels, False))]
    else:
        files = frame_files(Path(path))
        in_folder = files[0] != Path(path)  # then each file is one frame: the first of an animation
        named = [(str(p), decode_frames(p, str(p), channels, in_folder)) for p in files]
    first_name, first = named[0][0], named[0][1][0]
    for name, frames in named:
        for frame in frames:
            if frame.shape != first.shape:
                raise UserError(f"{name}: frame size {frame.shape[1]}x{frame.shape[0]} differs from "
                                f"{first.shape[1]}x{first.shape[0]} of {first_name} (width x height)")
    stack = np.stack([frame for _, frames in named for frame in frames])  # (F, H, W, C) uint8
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
        stack = np.stack([np.asarray(Image.fromarray(f.squeeze(-1) if channels == 1 else f).resize((w, h), Image.BILINEAR))
                          .reshape(h, w, channels) for f in stack])
    return (stack.transpose(0, 3, 1, 2) / 255.0).astype(np.float32)


# ---- writing frames: strips, GIFs, one PNG per frame ----------------------------------------------

def to_image(frame: np.ndarray, scale: int = 1) -> Image.Image:
    """(C, H, W) float in [0, 1] (C = 1 or 3) -> a Pillow image, upscaled ``scale`` times (nearest)."""
    pixels = (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)  # (H, W, C)
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST) if scale > 1 else image


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.getvalue()


def strip_label(text: str) -> str:
    """A strip row's label as drawn: one line, its words two spaces apart. Pillow's default font
    (FreeType at 10 px since Pillow 10.1) advances 2 px for a space, which after a "t" reads as no
    gap at all ("down-leftslowly")."""
    return "  ".join(text.split())


def write_strip(path, rows: list[np.ndarray], labels: list[str] | None = None, min_side: int = 64) -> None:
    """A PNG with one row of frames per sequence (e.g. input | predicted | true), each row (T, C, H, W).

    Frames are upscaled (nearest) to at least ``min_side`` pixels; rows of fewer frames end early.
    """
    if labels is not None and len(labels) != len(rows):
        raise ValueError(f"{len(labels)} labels for {len(rows)} rows")
    labels = [strip_label(t) for t in labels] if labels else labels
    H, W = max(r.shape[2] for r in rows), max(r.shape[3] for r in rows)
    scale, gap = max(1, -(-min_side // max(H, 1))), 2
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = max((int(draw.textlength(t)) + 2 * gap for t in labels), default=0) if labels else 0
    cell_w, cell_h = W * scale + gap, H * scale + gap
    strip = Image.new("RGB", (margin + cell_w * max(len(r) for r in rows) + gap, cell_h * len(rows) + gap), "gray")
    draw = ImageDraw.Draw(strip)
    for i, row in enumerate(rows):
        top = gap + i * cell_h
        if labels:
            _, y0, _, y1 = draw.textbbox((0, 0), labels[i])
            draw.text((gap, top + (H * scale - (y1 - y0)) // 2 - y0), labels[i], fill="white")
        for t, frame in enumerate(row):
            strip.paste(to_image(frame, scale).convert("RGB"), (margin + gap + t * cell_w, top))
    atomic_write(Path(path), png_bytes(strip, format="PNG"))


def write_gif(path, frames: np.ndarray, duration_ms: int = 100, scale: int = 1) -> None:
    """An animated GIF of frames (T, C, H, W) in [0, 1], looping. Grey frames are exact to 1/255;
    Pillow merges identical consecutive frames into one longer frame."""
    images = [to_image(frame, scale) for frame in frames]
    data = png_bytes(images[0], format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    atomic_write(Path(path), data)


def write_frames(folder, frames: np.ndarray, scale: int = 1) -> list[Path]:
    """One PNG per frame (T, C, H, W) in ``folder`` (created): frame_000.png, ... sorted by name."""
    folder = Path(folder)
    writable_dir(folder)
    digits = max(3, len(str(len(frames) - 1)))
    paths = [folder / f"frame_{t:0{digits}d}.png" for t in range(len(frames))]
    for p, frame in zip(paths, frames):
        atomic_write(p, png_bytes(to_image(frame, scale), format="PNG"))
    return paths
