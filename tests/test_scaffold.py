"""`ganzoo plugin new`: the package it writes installs, passes the contract as written,
trains and generates, in a fresh virtual environment."""
from __future__ import annotations

import importlib.util
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from ganzoo.scaffold import PluginSpec


def test_names_derive_from_the_cli_name():
    spec = PluginSpec("my-gan", "gan")
    assert (spec.module, spec.cls, spec.dist) == ("my_gan", "MyGan", "ganzoo-my-gan")
    assert set(spec.files()) == {"pyproject.toml", "README.md", "src/my_gan/__init__.py",
                                 "src/my_gan/model.py", "tests/test_my_gan.py"}
    assert 'my-gan = "my_gan"' in spec.files()["pyproject.toml"]


@pytest.mark.parametrize("template", ["gan", "minimal"])
def test_writes_a_package_that_compiles(cli, tmp_path, template):
    r = cli("plugin", "new", "fresh-gan", "--template", template, "--out", "pkgs")
    assert r.code == 0, r.err
    root = tmp_path / "pkgs" / "fresh-gan"
    assert "pip install -e" in r.out
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    model = (root / "src" / "fresh_gan" / "model.py").read_text()
    assert ("GANArchitecture" in model) == (template == "gan")


@pytest.mark.parametrize("name, fragment", [
    ("Bad_Name", "lower-case letters"), ("torch", "module named torch already exists"),
    ("class", "module named class")])
def test_bad_names_are_one_line(cli, name, fragment):
    r = cli("plugin", "new", name)
    assert r.code == 1 and fragment in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_a_folder_in_the_way_is_refused(cli, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    r = cli("plugin", "new", "taken")
    assert r.code == 1 and "already exists and is not empty" in r.err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"


def fresh_venv(path: Path) -> Path:
    """A new virtual environment that sees this one's packages (torch, ganzoo, pip,
    setuptools, pytest) through a .pth file, so nothing is downloaded; what gets installed
    there stays there. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    target = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                             "['purelib'])"], capture_output=True, text=True, check=True)
    lines = [f"import site; site.addsitedir({p!r})" for p in site.getsitepackages()]
    (Path(target.stdout.strip()) / "_parent_env.pth").write_text("\n".join(lines) + "\n")
    return python


@pytest.mark.slow
def test_new_plugin_installs_passes_its_tests_trains_and_generates(tmp_path):
    python = fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    env.update(GANZOO_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run([str(python), "-m", *args], cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=timeout)
        assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-2000:]}\n" \
                                     f"{done.stderr[-2000:]}"
        return done

    run("ganzoo", "plugin", "new", "mygan")
    run("pip", "install", "-q", "--no-build-isolation", "--no-deps", "-e", "./mygan")
    assert importlib.util.find_spec("mygan") is None      # installed in the new venv only
    tests = run("pytest", "mygan", "-q", "-p", "no:cacheprovider")
    assert " passed" in tests.stdout and "failed" not in tests.stdout
    run("ganzoo", "train", "mygan", "--data", "shapes", "--resolution", "16", "--kimg", "1",
        "-q")
    run("ganzoo", "generate", "mygan", "--seeds", "0-3", "--out", "images")
    assert len(list((tmp_path / "images").glob("seed*.png"))) == 4
