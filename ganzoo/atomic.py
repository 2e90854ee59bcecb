"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from ganzoo.errors import DiskFull

FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Write to a temp file beside ``path``, fsync it, rename it over ``path``, fsync the
    directory. If the body raises, or the process dies, ``path`` is untouched and the temp
    file (named ``.<name>.tmp*``) is removed or left to be ignored."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path, prefix=f".{path.name}.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        full = is_disk_full(e, path.parent)     # asked before the temp file frees its space
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full:
            raise DiskFull(disk_full_message(path)) from e
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text.encode())


def temp_beside(path: Path, prefix: str, suffix: str = "") -> tuple[int, str]:
    """mkstemp in ``path``'s folder, with the mode ``open(path, "w")`` would give (mkstemp's
    0600 made every output private whatever the umask)."""
    mode = open_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    try:
        os.chmod(tmp, mode)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp


def open_mode(path: Path) -> int:
    """An existing file keeps its permission bits (as open() leaves them); a new one gets
    0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    # /proc reads it without changing it; os.umask() must set it to read it, and a thread
    # creating a file in between would get the wrong mode
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def is_disk_full(e: BaseException, folder: Path) -> bool:
    """Whether a failed write into ``folder`` ran out of space. torch.save reports a failed
    write as a RuntimeError ("unexpected pos"), not the OSError, so the file system is asked
    too (that question needs an error to explain, it is never asked on success)."""
    if isinstance(e, OSError):
        return e.errno in FULL
    if not isinstance(e, Exception):
        return False          # Ctrl-C, a signal: not the disk
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def disk_full_message(path: str | os.PathLike) -> str:
    """One line: the path, that the disk is full, and where to make room."""
    from ganzoo.data.cache import ganzoo_home
    path = Path(path)
    home = ganzoo_home()
    if path.is_relative_to(home):
        hint = f"free some space in {home}, or set GANZOO_HOME to a folder on a disk with room"
    else:
        hint = "free some space, or write to another disk (--out)"
    return f"cannot write {path}: no space left on device (the disk is full); {hint}"
