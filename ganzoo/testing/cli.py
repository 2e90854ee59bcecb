"""``ganzoo ARGS`` run in-process, as pytest's pytester runs pytest: exit code and output."""
from __future__ import annotations

from typing import Any, NamedTuple


class CliResult(NamedTuple):
    """What one ``ganzoo`` call did; unpacks as ``code, out, err``."""

    code: int
    out: str
    err: str


class CliRunner:
    """Calls ``ganzoo.cli.main`` with the given arguments, reading the output through a
    pytest capture fixture (``capsys``). The plugin registry is rebuilt before and after
    each call, so a call sees plugins registered since the last one and leaves nothing
    cached for the next test."""

    def __init__(self, capture: Any):
        self.capture = capture

    def __call__(self, *args: Any) -> CliResult:
        from ganzoo.cli import main
        from ganzoo.registry import reset_registry
        self.capture.readouterr()            # output of the test itself is not ours
        reset_registry()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            reset_registry()
        out, err = self.capture.readouterr()
        return CliResult(code, out, err)
