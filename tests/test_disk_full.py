"""A full disk (issue 21, item 8): one line that says so and names the path; a full
$GANZOO_HOME cache does not stop training when --out has room."""
from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch

import ganzoo.atomic
from ganzoo.atomic import atomic_write
from ganzoo.errors import GanzooError
from conftest import TINY_DCGAN
from test_cli_errors import assert_one_line_error


class FullFile:
    """A file whose writes fail as on a full disk (where a tmpfs cannot be mounted)."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def simulate_full(monkeypatch, folder: Path) -> None:
    """Writes through ganzoo.atomic into ``folder`` fail with ENOSPC; statvfs says it is full."""
    real_fdopen, real_statvfs = os.fdopen, os.statvfs

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        inside = os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder))
        return FullFile(f) if inside else f

    def statvfs(path):
        result = real_statvfs(path)
        if str(path).startswith(str(folder)):
            return os.statvfs_result((*result[:3], 0, 0, *result[5:]))
        return result

    monkeypatch.setattr(ganzoo.atomic.os, "fdopen", fdopen)
    monkeypatch.setattr(ganzoo.atomic.os, "statvfs", statvfs)


@pytest.fixture
def full_disk(tmp_path, monkeypatch) -> Path:
    """A folder on a full file system: a 1 MiB tmpfs filled up, or (where mounting is not
    allowed) writes that fail with ENOSPC."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    if mounted:
        fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError as e:
            assert e.errno == errno.ENOSPC
        finally:
            os.close(fd)
    else:
        simulate_full(monkeypatch, folder)
    yield folder
    if mounted:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_checkpoint_write_on_a_full_disk_names_the_path(full_disk):
    path = full_disk / "run" / "ckpt.pt"
    with pytest.raises(GanzooError) as info:
        with atomic_write(path) as f:
            torch.save({"w": torch.zeros(500_000)}, f)   # torch hides the OSError
    message = str(info.value)
    assert "no space left on device" in message and str(path) in message
    assert [p.name for p in path.parent.iterdir()] == []    # no temp file left


def test_training_into_a_full_out_is_one_line(cli, full_disk):
    r = cli("train", "dcgan", "--data", "shapes", *TINY_DCGAN, "--kimg", "0.016",
            "--out", str(full_disk / "runs"), "-q")
    assert_one_line_error(r, "no space left on device", str(full_disk / "runs"))


def test_full_cache_falls_back_to_memory(cli, full_disk, monkeypatch, tmp_path):
    monkeypatch.setenv("GANZOO_HOME", str(full_disk / "home"))
    r = cli("train", "dcgan", "--data", "shapes", *TINY_DCGAN, "--kimg", "0.016", "-q")
    assert r.code == 0, r.err
    warnings = [x for x in r.err.splitlines() if x.startswith("warning:")]
    assert len(warnings) == 1, r.err
    assert "no space left on device" in warnings[0] and "GANZOO_HOME" in warnings[0]
    assert "Traceback" not in r.err
    assert (next((tmp_path / "runs").iterdir()) / "final.png").exists()
