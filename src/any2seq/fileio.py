"""Atomic file writes: a crash leaves either the old file or the new one, never a mix."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temporary name in the same folder, fsync, rename over ``path``, fsync the folder."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():  # not unlink(missing_ok=True): it raises when path's folder is not a directory
            tmp.unlink()
    fsync_dir(path.parent)


def writable_dir(path: Path, name: str | None = None) -> None:
    """Create the folder ``path`` if need be and check that a file can be written in it.

    Checked before the work, so that a bad ``--out`` fails at once rather than after training or
    decoding. ``name`` is what the error message blames (default: the folder).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        in_the_way = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        why = f"{in_the_way} is a file, not a directory" if in_the_way else e.strerror or str(e)
        raise UserError(f"{name or path}: output directory is not writable ({why})") from None
