"""Reading parallel text files (plain or gzip, UTF-8), streaming, with errors that name file and line."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

from any2seq.errors import UserError, where

_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def _open(path: Path) -> BinaryIO:
    """Open ``path`` for binary reading, through gzip when its name ends in ``.gz``."""
    if not path.exists():
        raise UserError(f"{where(path)}: no such file")
    if not path.is_file():
        raise UserError(f"{where(path)}: not a file")
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    except OSError as e:
        raise UserError(f"{where(path)}: cannot read ({e.strerror or e})") from None


def plain_or_gz(base: Path, key: str, root: str) -> Path:
    """``base`` or ``base.gz``, whichever exists; both is an error naming them (which did the user mean?)."""
    gz = base.with_name(base.name + ".gz")
    found = [p for p in (base, gz) if p.exists()]
    if len(found) == 2:
        raise UserError(f"{key}: both {base} and {gz} exist; remove or rename one (any2seq does not guess which)")
    if not found:
        raise UserError(f"{key}: {base}[.gz]: no such file (data.root is {root!r})")
    return found[0]


def _read_error(path: Path, line: int, error: Exception) -> UserError:
    """A one-line UserError for an error met while reading ``path`` after ``line`` lines."""
    if isinstance(error, _GZIP_ERRORS):
        return UserError(f"{where(path, line)}: corrupt gzip ({error})")
    return UserError(f"{where(path, line)}: cannot read ({getattr(error, 'strerror', None) or error})")


def _decode(raw: bytes, path: Path, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        column = len(raw[: e.start].decode("utf-8", errors="replace")) + 1  # in characters, 1-based
        raise UserError(
            f"{where(path, line)}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {column})"
        ) from None


def read_lines(path) -> Iterator[str]:
    """Yield the lines of a UTF-8 text file (``.gz`` read through gzip), each ``strip()``-ed.

    Streams: only one line is held at a time. Lines are split at ``\\n`` only, so line numbers
    agree with ``wc -l`` and with :func:`count_lines`.
    """
    path = Path(path)
    with _open(path) as f:
        n = 0
        while True:
            try:
                raw = f.readline()
            except (OSError, *_GZIP_ERRORS) as e:
                raise _read_error(path, n + 1, e) from None
            if not raw:
                return
            n += 1
            yield _decode(raw, path, n).strip()


def count_lines(path) -> int:
    """The number of lines :func:`read_lines` yields for ``path`` (a last line without newline counts)."""
    path = Path(path)
    n, last = 0, b"\n"
    with _open(path) as f:
        while True:
            try:  # read1: one step of gzip at a time, so a truncated file's error comes at its real line
                chunk = f.read1(1 << 20)
            except (OSError, *_GZIP_ERRORS) as e:
                raise _read_error(path, n + 1, e) from None
            if not chunk:
                break
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


def check_parallel(src_path, tgt_path) -> int:
    """Check that two files hold the same, non-zero number of lines; return that number."""
    n_src, n_tgt = count_lines(src_path), count_lines(tgt_path)
    for path, n in ((src_path, n_src), (tgt_path, n_tgt)):
        if n == 0:
            raise UserError(f"{where(path)}: no data")
    if n_src != n_tgt:
        raise UserError(f"{where(src_path)} has {n_src} lines but {where(tgt_path)} has {n_tgt}")
    return n_src
