"""One trainer per run directory.

Two trainers on one run (a `--resume` started while the first is still saving, or twice by
mistake) would interleave stats.jsonl lines, delete each other's checkpoint temp files and
overwrite each other's checkpoints. The trainer holds an exclusive advisory lock on
``RUN/.lock`` while it works. The operating system drops the lock when the process ends,
however it ends (SIGKILL included), so a crash never leaves a stale lock behind.

POSIX only (``fcntl.flock``); where fcntl is missing (Windows) runs are not locked.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ganzoo.atomic import FULL, disk_full_message
from ganzoo.errors import DiskFull, GanzooError

try:
    import fcntl
except ImportError:          # Windows
    fcntl = None

LOCK_NAME = ".lock"


class RunLock:
    """Hold with ``acquire()``; ``release()`` (or garbage collection) gives it back."""

    def __init__(self, run: Path):
        self.path = run / LOCK_NAME
        self._file = None

    def acquire(self) -> None:
        if fcntl is None or self._file is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise GanzooError(f"run {self.path.parent} is being trained by another process "
                              f"(pid {holder}); wait for it to end or stop it first")
        try:
            f.seek(0)
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
        except OSError as e:       # the pid is for the message above; a full disk says so
            with contextlib.suppress(OSError):
                f.close()
            if e.errno in FULL:
                raise DiskFull(disk_full_message(self.path)) from None
            raise
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()        # closing the descriptor drops the lock
            self._file = None

    def __del__(self) -> None:
        self.release()
