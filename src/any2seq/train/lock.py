"""An exclusive lock on a run directory, so that two ``train`` processes never write one run.

``flock`` on ``DIR/.lock``: the operating system drops the lock when its holder exits, however it
exits (``kill -9`` included), so no stale lock is ever left to clean up. The file is never deleted
(deleting a lock file races with a process opening it); it holds the last holder's pid, so it
changes with every run that starts, refused later or not: it is bookkeeping, not part of the run.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not guarded
    fcntl = None

LOCK_NAME = ".lock"


class RunLock:
    """``with RunLock(out):`` holds the lock on the existing directory ``out`` and records this
    process's pid in it, or raises a UserError naming the process that holds it."""

    def __init__(self, out: Path):
        self.out, self.path, self.fd = Path(out), Path(out) / LOCK_NAME, None

    def __enter__(self) -> "RunLock":
        if fcntl is None:
            return self
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"{self.path}: cannot open the run's lock file ({e.strerror or e})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another process holds it
            holder = os.pread(self.fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(self.fd)
            raise UserError(f"{self.out}: another `any2seq train` (pid {holder}) is writing this run; "
                            "wait for it to finish or choose another --out") from None
        except OSError:  # a file system without locks: train unguarded, as before locks existed
            os.close(self.fd)
            self.fd = None
            return self
        try:  # for the message a second run shows
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, its pid shows as unknown
            pass
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the lock
            self.fd = None
