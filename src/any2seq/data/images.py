"""Image data: captioned scenes of real handwritten digit scans, a COCO-format caption reader for a
user's own images, and one image file (or upload) read into a tensor-ready array via Pillow."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError, where
from ..fileio import check_regular
from .digits import SPLITS
from .video import MAX_IMAGE_BYTES, MODES, decode_frames, one_line, scaled_scans

ROWS = ("top", "middle", "bottom")
COLS = ("left", "center", "right")
SIZES = {"small": 0.6, "large": 0.95}  # digit side as a share of a grid cell


def cell_name(row: int, col: int) -> str:
    """"top left", "middle center" ... : the 3x3 grid cell a digit stands in."""
    return f"{ROWS[row]} {COLS[col]}"


def digit_scenes(split: str, n: int, seed: int, canvas: int = 48, max_digits: int = 4
                 ) -> list[tuple[np.ndarray, str]]:
    """n (image (1, canvas, canvas) float32 in [0, 1], caption) pairs of 1..max_digits digit scans.

    The canvas is a 3x3 grid; each digit takes its own cell, is "small" or "large", and is
    jittered inside the cell. The caption lists the digits in reading order (by row, then column),
    e.g. "large 7 top left and small 3 bottom right". Scans come from ``split`` only, so no test
    image holds a scan seen in training. Scene i depends only on (split, seed, i).
    """
    if not 1 <= max_digits <= 9:
        raise ValueError(f"max_digits must be in 1..9, got {max_digits}")
    cell = canvas // 3
    if cell < 4:
        raise ValueError(f"canvas {canvas} is too small for a 3x3 grid of digits (at least 12)")
    sides = {name: max(3, int(round(share * cell))) for name, share in SIZES.items()}
    scans = {name: scaled_scans(split, side) for name, side in sides.items()}
    scenes = []
    for i in range(n):
        rng = np.random.default_rng([seed, SPLITS.index(split), i, 2])
        image = np.zeros((1, canvas, canvas), np.float32)
        count = int(rng.integers(1, max_digits + 1))
        cells = np.sort(rng.choice(9, size=count, replace=False))  # reading order
        words = []
        for c in cells:
            row, col = divmod(int(c), 3)
            size = str(rng.choice(list(SIZES)))
            images, labels = scans[size]
            k = int(rng.integers(len(images)))
            side = sides[size]
            y = row * cell + int(rng.integers(0, cell - side + 1))
            x = col * cell + int(rng.integers(0, cell - side + 1))
            np.maximum(image[0, y: y + side, x: x + side], images[k], out=image[0, y: y + side, x: x + side])
            words.append(f"{size} {labels[k]} {cell_name(row, col)}")
        scenes.append((image, " and ".join(words)))
    return scenes


def read_image(source, channels: int = 1, size: int | None = None, name: str | None = None) -> np.ndarray:
    """(C, H, W) float32 in [0, 1] from an image file's path or bytes (an upload), resized to
    size x size (bilinear) when ``size`` is given. The first frame of an animation is taken.

    Raises ``UserError`` naming the file for a missing file, a file Pillow cannot read, or an
    image with no pixels.
    """
    if channels not in MODES:
        raise ValueError(f"channels must be one of {sorted(MODES)}, got {channels}")
    if isinstance(source, (bytes, bytearray)):
        name = name or "upload"
        source = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        name = name or where(path)
        source = check_regular(path, MAX_IMAGE_BYTES, name, "no such image file", "image")
    pixels = decode_frames(source, name, channels, first_only=True)[0]  # (H, W, C) uint8
    if pixels.size == 0:
        raise UserError(f"{name}: the image has no pixels ({pixels.shape[1]}x{pixels.shape[0]})")
    if size is not None and pixels.shape[:2] != (size, size):
        resized = Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels).resize((size, size), Image.BILINEAR)
        pixels = np.asarray(resized).reshape(size, size, channels)
    return (pixels.transpose(2, 0, 1) / 255.0).astype(np.float32)


def _field(item, key: str, kind, path: Path, what: str):
    if not isinstance(item, dict) or key not in item:
        raise UserError(f"{where(path)}: {what} has no {key!r} key")
    value = item[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        kinds = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise UserError(f"{where(path)}: {what}: {key!r} must be {kinds}, got {type(value).__name__}")
    return value


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system, a loop of links: not a readable image file
        return False


def read_coco(json_path, image_dir) -> list[tuple[Path, str]]:
    """(image path, caption) pairs from a COCO-format caption file (as Karpathy's Flickr8k/COCO
    splits are shipped): ``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}``,
    images found in ``image_dir``. An image with several captions gives several pairs.

    Raises ``UserError`` naming the file for invalid JSON, a missing key, a caption whose image id
    is not listed, or an image file that does not exist.
    """
    path, image_dir = Path(json_path), Path(image_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{where(path)}: no such caption file") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{where(path, e.lineno)}: not valid JSON ({e.msg})") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: nested too deeply
        raise UserError(f"{where(path)}: cannot read ({one_line(e)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{where(path)}: the caption file must hold a JSON object with 'images' and 'annotations'")
    images = _field(data, "images", list, path, "the file")
    annotations = _field(data, "annotations", list, path, "the file")
    files: dict = {}
    for i, image in enumerate(images):
        image_id = _field(image, "id", (int, str), path, f"images[{i}]")
        name = _field(image, "file_name", str, path, f"images[{i}]")
        files[image_id] = image_dir / name
    pairs = []
    for i, note in enumerate(annotations):
        image_id = _field(note, "image_id", (int, str), path, f"annotations[{i}]")
        caption = _field(note, "caption", str, path, f"annotations[{i}]")
        if image_id not in files:
            raise UserError(f"{where(path)}: annotations[{i}]: image_id {image_id!r} is not in 'images'")
        caption = " ".join(caption.split())
        if caption:
            pairs.append((files[image_id], caption))
    missing = sorted({str(p) for p, _ in pairs if not _is_file(p)})
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"{where(path)}: image file {missing[0]!r} does not exist{more}")  # repr: a name may hold a newline
    if not pairs:
        raise UserError(f"{where(path)}: no captions")
    return pairs
