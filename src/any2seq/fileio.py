"""Atomic file writes (a crash leaves either the old file or the new one, never a mix), and reads
that take only regular files of a bounded size (never a FIFO, a device or a folder)."""
from __future__ import annotations

import os
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def user_cache() -> Path:
    """any2seq's folder in the user's cache ($XDG_CACHE_HOME or ~/.cache): measured verdicts,
    trained helpers, generated data; anything in it can be deleted and is made again."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "any2seq"


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
    except OSError as e:  # a full disk, a read-only file system: the old file is still there
        raise write_error(path, e) from None
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


def check_new_dir(out: Path, name: str | None = None) -> None:
    """Refuse an ``out`` that exists and is not an empty folder: nothing is ever written over."""
    out = Path(out)
    try:
        taken = out.exists() and (not out.is_dir() or any(out.iterdir()))
    except OSError as e:
        raise UserError(f"{name or out}: cannot read ({e.strerror or e})") from None
    if taken:
        raise UserError(f"{name or out}: already exists and is not an empty directory; choose another")
    writable_dir(out.parent, name or str(out))


@contextmanager
def staged_dir(out: Path):
    """A temporary folder beside ``out`` to write into; renamed to ``out`` (missing or empty, see
    :func:`check_new_dir`) when the block succeeds, removed when it fails: never half a folder."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        yield tmp
        if out.exists():
            out.rmdir()  # empty, or this fails rather than replace what appeared meanwhile
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except OSError as e:  # a full disk, a read-only file system
        raise write_error(out, e) from None
    except UserError as e:  # name the folder the user asked for, not its temporary name
        raise UserError(str(e).replace(str(tmp), str(out))) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def copy_dir(src: Path, out: Path) -> None:
    """Copy the folder ``src`` to ``out`` through :func:`staged_dir`: a crash leaves no half-copied
    ``out``. An ``out`` already there (what an attempt that failed before its first checkpoint left)
    is replaced."""
    out = Path(out)
    if out.is_dir() and not out.is_symlink():
        shutil.rmtree(out)
    with staged_dir(out) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)


# --- reading: regular files only, of a bounded size -----------------------------------------------

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
_KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFDIR: "a directory", stat.S_IFSOCK: "a socket"}


def _refused(name: str, what: str, why: str) -> UserError:
    return UserError(f"{name}: cannot read{' ' + what if what else ''}: {why}")


def _not_regular(path: Path, name: str, what: str, mode: int) -> UserError:
    kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
    link = f" (a link to {os.path.realpath(path)})" if os.path.islink(path) else ""
    return _refused(name, what, f"it is {kind}{link}, not a regular file")


def _too_big(name: str, what: str, size: int, limit: int) -> UserError:
    return _refused(name, what, f"{size:,} bytes, more than the {limit:,} it may have")


def _os_error(name: str, what: str, e: Exception) -> UserError:
    return _refused(name, what, getattr(e, "strerror", None) or str(e))


def check_regular(path, limit: int, name: str | None = None, missing: str = "no such file", what: str = "") -> Path:
    """``path``, checked to be a regular file (after links) of at most ``limit`` bytes, for readers
    that open files themselves (Pillow): a FIFO would block them, a link to /dev/zero never end.
    Errors read ``NAME: MISSING`` or ``NAME: cannot read WHAT: why``."""
    path = Path(path)
    name = name or str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{name}: {missing}") from None
    except (OSError, ValueError) as e:  # a loop of links, a name too long, a NUL in the name
        raise _os_error(name, what, e) from None
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path, name, what, info.st_mode)
    if info.st_size > limit:
        raise _too_big(name, what, info.st_size, limit)
    return path


def read_regular(path, limit: int, name: str | None = None, missing: str = "no such file", what: str = "") -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes; anything else is a UserError
    (worded as in :func:`check_regular`).

    Opened without blocking and checked on the open descriptor, so a FIFO never waits for a writer
    and a file swapped after a check is still checked; at most ``limit`` bytes are ever read.
    """
    path = Path(path)
    name = name or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise UserError(f"{name}: {missing}") from None
    except (OSError, ValueError) as e:
        raise _os_error(name, what, e) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, name, what, info.st_mode)
        if info.st_size > limit:
            raise _too_big(name, what, info.st_size, limit)
        with os.fdopen(fd, "rb", closefd=False) as f:
            parts, total, want = [], 0, info.st_size + 1  # read(n) allocates n bytes: ask for what is there
            while total <= limit and (part := f.read(min(want, limit + 1 - total))):
                parts.append(part)
                total, want = total + len(part), MiB
    except OSError as e:
        raise _os_error(name, what, e) from None
    finally:
        os.close(fd)
    if total > limit:  # grew since the check
        raise _too_big(name, what, total, limit)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def write_error(path, error: OSError) -> UserError:
    """A one-line UserError for a failed write (a full disk, a read-only file system), naming ``path``."""
    return UserError(f"{path}: cannot write ({error.strerror or error})")
