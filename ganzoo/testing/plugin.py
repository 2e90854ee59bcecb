"""The pytest plugin ganzoo installs (entry point ``pytest11: ganzoo``): the ``ganzoo_cli``
fixture. It is loaded into every pytest session of an environment that has ganzoo, so it
imports nothing heavy until a fixture is used and defines no autouse fixtures."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ganzoo_cli_home(tmp_path_factory):
    """A GANZOO_HOME for the session's CLI calls: prepared data and downloads stay out of
    the user's own home, and are shared by the session's tests."""
    return tmp_path_factory.mktemp("ganzoo-cli-home")


@pytest.fixture
def ganzoo_cli(capsys, monkeypatch, tmp_path, ganzoo_cli_home):
    """Run ``ganzoo ARGS`` in-process in ``tmp_path``: ``code, out, err = ganzoo_cli(...)``."""
    from ganzoo.testing.cli import CliRunner
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANZOO_HOME", str(ganzoo_cli_home))
    return CliRunner(capsys)
