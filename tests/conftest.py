"""Shared fixtures: an isolated GANZOO_HOME, an in-process CLI runner, a trained tiny run."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ganzoo.registry import reset_registry

# No test compiles the native ops by surprise: "auto" uses them only once built (the one
# build of a session is tests/test_ops_native.py's, on purpose). See ganzoo/ops/__init__.py.
os.environ.setdefault("GANZOO_OPS_BUILD", "0")

FIXTURES = Path(__file__).parent / "fixtures"
TINY_PLUGIN = FIXTURES / "ganzoo-tiny-plugin"
# The smallest DCGAN the trainer accepts: a few seconds of CPU for a whole run.
TINY_DCGAN = ["--resolution", "32", "--base-channels", "8", "--max-channels", "16",
              "--latent-dim", "16", "--batch", "16"]


@pytest.fixture(scope="session", autouse=True)
def ganzoo_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("ganzoo-home")
    os.environ["GANZOO_HOME"] = str(home)
    return home


@pytest.fixture(autouse=True)
def fresh_registry():
    reset_registry()
    yield
    reset_registry()


@dataclass
class Native:
    root: Path          # TORCH_EXTENSIONS_DIR of this session
    directory: Path     # the build folder
    seconds: float      # wall time of this session's build (0 if it was loaded before)


@pytest.fixture(scope="session")
def native(tmp_path_factory) -> Native:
    """The C++ CPU extension, compiled once per session into a fresh TORCH_EXTENSIONS_DIR
    (kept set for the session, so later tests see the same cache). Shared by
    tests/test_ops_native.py and tests/test_ops_library.py: one build per session."""
    import time

    from ganzoo.ops import build
    root = tmp_path_factory.mktemp("torch-extensions")
    os.environ["TORCH_EXTENSIONS_DIR"] = str(root)
    t0 = time.perf_counter()
    compiled = build.loaded(build.CPU_EXTENSION) is None
    build.load(build.CPU_EXTENSION, build=True)
    seconds = time.perf_counter() - t0 if compiled else 0.0
    return Native(root, build.state(build.CPU_EXTENSION).directory, seconds)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run `ganzoo ARGS` in-process, in tmp_path, returning exit code and output."""
    from ganzoo.cli import main
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        return Result(code, out, err)
    return run


def run_ganzoo(*args: str, cwd: Path, env: dict | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `ganzoo` command (python -m ganzoo) in a subprocess."""
    return subprocess.run([sys.executable, "-m", "ganzoo", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A finished tiny DCGAN run (0.128 kimg), shared by read-only tests."""
    from ganzoo.cli import main
    root = tmp_path_factory.mktemp("trained")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        main(["train", "dcgan", "--data", "shapes", *TINY_DCGAN, "--kimg", "0.128",
              "--snap", "0.064", "--tick", "0.032", "-q"])
    except SystemExit as e:
        assert e.code in (0, None)
    finally:
        os.chdir(cwd)
        reset_registry()
    runs = sorted((root / "runs").iterdir())
    assert len(runs) == 1
    return runs[0]


def resume_copy(cli, tmp_path: Path, source: Path, arch: str, kimg: str) -> Path:
    """Resume a copy of checkpoint ``source`` (outside any run directory) to ``kimg`` under
    tmp_path/runs; returns the new run's last checkpoint."""
    import shutil
    from ganzoo.checkpoint import checkpoints_of, list_runs
    path = tmp_path / source.name
    shutil.copy(source, path)
    result = cli("train", arch, "--resume", str(path), "--kimg", kimg,
                 "--out", str(tmp_path / "runs"), "-q")
    assert result.code == 0, result.err
    return checkpoints_of(list_runs(tmp_path / "runs")[-1])[-1]
