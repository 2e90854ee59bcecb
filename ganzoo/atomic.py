"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


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
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
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
