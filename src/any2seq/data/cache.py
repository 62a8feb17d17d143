"""Encoded corpora cached on disk as memory-mapped ragged arrays of token ids."""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from itertools import chain, islice
from operator import index as as_index
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from any2seq.data.text import count_lines, read_lines
from any2seq.data.tokenizer import Tokenizer
from any2seq.errors import UserError, where
from any2seq.fileio import fsync_dir, write_error

FORMAT = b"any2seq-token-array-v1"  # part of the cache key: bump it when the layout changes
OFFSET_DTYPE = np.dtype("<i8")
PROGRESS_MIN_LINES = 50_000


def ids_dtype(vocab_size: int) -> np.dtype:
    """uint16 ids while they fit, int32 beyond; little-endian on disk."""
    return np.dtype("<u2") if vocab_size <= 65535 else np.dtype("<i4")


def _map(path: Path, dtype: np.dtype) -> np.ndarray:
    """Memory-map a raw array file read-only (numpy cannot map an empty file)."""
    if path.stat().st_size == 0:
        return np.zeros(0, dtype)
    return np.asarray(np.memmap(path, dtype=dtype, mode="r"))  # a plain view slices faster


class TokenArray:
    """N token-id sequences on disk: ``{name}.ids`` (all ids, concatenated) and
    ``{name}.offsets`` (N+1 int64; sequence i is ``ids[offsets[i]:offsets[i+1]]``).

    Raises FileNotFoundError or ValueError when the pair is missing or incomplete.
    """

    def __init__(self, name):
        self.name = Path(name)
        ids_path, offsets_path = Path(f"{name}.ids"), Path(f"{name}.offsets")
        offsets_bytes = offsets_path.stat().st_size
        if offsets_bytes == 0 or offsets_bytes % OFFSET_DTYPE.itemsize:
            raise ValueError(f"{offsets_path}: incomplete offsets")
        self.offsets = _map(offsets_path, OFFSET_DTYPE)
        n_tokens, n_bytes = int(self.offsets[-1]), ids_path.stat().st_size
        itemsize = n_bytes // n_tokens if n_tokens else 2
        if self.offsets[0] != 0 or itemsize not in (2, 4) or itemsize * n_tokens != n_bytes:
            raise ValueError(f"{ids_path}: {n_bytes} bytes do not hold {n_tokens} ids")
        self.ids = _map(ids_path, np.dtype("<u2") if itemsize == 2 else np.dtype("<i4"))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i) -> np.ndarray:
        i = as_index(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} sequences")
        i %= n
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        """(N,) int32 number of ids in each sequence, computed afresh (cheap) rather than kept."""
        return np.diff(self.offsets).astype(np.int32)


def _write_chunks(ids_file, offsets_file, chunks: Iterable[Sequence[Sequence[int]]], dtype) -> None:
    offsets_file.write(np.zeros(1, OFFSET_DTYPE).tobytes())
    total = 0
    for seqs in chunks:
        lengths = np.fromiter(map(len, seqs), np.int64, count=len(seqs))
        flat = np.fromiter(chain.from_iterable(seqs), dtype, count=int(lengths.sum()))
        ids_file.write(flat.tobytes())
        offsets_file.write((total + np.cumsum(lengths)).astype(OFFSET_DTYPE).tobytes())
        total += int(lengths.sum())
    for f in (ids_file, offsets_file):
        f.flush()
        os.fsync(f.fileno())


def write_token_array(name, chunks: Iterable[Sequence[Sequence[int]]], vocab_size: int) -> TokenArray:
    """Write sequences, a chunk (list of sequences) at a time, as ``{name}.ids/.offsets``.

    Both go to temp files first and are renamed into place, offsets last, so an interrupted
    write never leaves a pair that :class:`TokenArray` accepts as complete.
    """
    name = Path(name)
    name.parent.mkdir(parents=True, exist_ok=True)
    temps = [tempfile.mkstemp(dir=name.parent, prefix=f".{name.name}.", suffix=".tmp") for _ in range(2)]
    try:
        with os.fdopen(temps[0][0], "wb") as ids_file, os.fdopen(temps[1][0], "wb") as offsets_file:
            _write_chunks(ids_file, offsets_file, chunks, ids_dtype(vocab_size))
        os.replace(temps[0][1], f"{name}.ids")
        os.replace(temps[1][1], f"{name}.offsets")
        fsync_dir(name.parent)
    except BaseException as e:
        for _, tmp in temps:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # a full disk
            raise write_error(f"{name}.ids", e) from None
        raise
    return TokenArray(name)


def cache_key(text_path, tokenizer: Tokenizer) -> str:
    """sha256 over the text file's identity (absolute path, size, mtime) and the tokenizer model."""
    path = Path(text_path).resolve()
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise UserError(f"{where(text_path)}: no such file") from None
    key = hashlib.sha256(FORMAT)
    key.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    key.update(hashlib.sha256(tokenizer.model_bytes).digest())
    return key.hexdigest()


def _chunked(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    while chunk := list(islice(lines, size)):
        yield chunk


def _progress(text_path: Path) -> tqdm:
    """A progress bar on stderr, shown only on a terminal and for corpora worth waiting for."""
    total = count_lines(text_path) if sys.stderr.isatty() else 0
    return tqdm(total=total, desc=f"encoding {text_path.name}", unit=" lines", file=sys.stderr,
                disable=total < PROGRESS_MIN_LINES, leave=False)


def encode_cached(text_path, tokenizer: Tokenizer, cache_dir, chunk_lines: int = 100_000) -> TokenArray:
    """Token ids of every line of ``text_path``, encoded once and then reopened from ``cache_dir``.

    Encoding streams ``chunk_lines`` lines at a time, so memory does not grow with the corpus.
    """
    text_path = Path(text_path)
    name = Path(cache_dir) / cache_key(text_path, tokenizer)
    try:
        return TokenArray(name)
    except (FileNotFoundError, ValueError):
        pass  # not cached yet, or a previous run stopped half-way: encode again

    def chunks(bar: tqdm) -> Iterator[list[list[int]]]:
        for lines in _chunked(read_lines(text_path), chunk_lines):
            yield tokenizer.encode(lines)
            bar.update(len(lines))

    with _progress(text_path) as bar:
        return write_token_array(name, chunks(bar), tokenizer.vocab_size)
