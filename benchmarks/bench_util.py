"""What every benchmark shares: timing that also works in pytest-benchmark's smoke mode, small
shapes there, and timing targets that are recorded and compared without failing CI.

Smoke mode is ``--benchmark-disable`` (pytest-benchmark's documented way to run benchmarks as
plain tests): each benchmarked function runs once, untimed, and ``benchmark.stats`` is None.
Here every benchmark then runs on small shapes, so ``pytest benchmarks --benchmark-disable``
checks in a minute or two that they all still work.
"""
from __future__ import annotations

import os
import time
import warnings

SMOKE = False     # set by conftest.py from --benchmark-disable, before collection

# Timing targets are asserted only when asked for, on a quiet machine: on a shared or loaded
# one (CI) a 5% overhead or a process ratio moves by more than its margin, and a flaky
# assertion would reject a good submission. Otherwise a miss is a warning in pytest's summary,
# and the numbers are in the benchmark table and --benchmark-json.
STRICT = os.environ.get("GANZOO_BENCH_STRICT") == "1"


class TargetMissed(UserWarning):
    """A timing target was missed (see STRICT)."""


def small(full, smoke):
    """``smoke`` in smoke mode, else ``full``."""
    return smoke if SMOKE else full


def median_seconds(benchmark, fn, args=(), kwargs=None, rounds: int = 1):
    """Run ``fn`` through ``benchmark.pedantic``; returns ``(median seconds, fn's result)``.
    In smoke mode pytest-benchmark keeps no statistics: the single call is timed here."""
    start = time.perf_counter()
    result = benchmark.pedantic(fn, args=args, kwargs=kwargs or {}, rounds=rounds,
                                iterations=1)
    if benchmark.disabled:
        return time.perf_counter() - start, result
    return benchmark.stats.stats.median, result


def check_target(ok: bool, message: str) -> None:
    """A timing target: asserted with GANZOO_BENCH_STRICT=1, else a warning when missed;
    not compared in smoke mode, whose shapes are too small to mean anything."""
    if SMOKE:
        return
    if STRICT:
        assert ok, message
    elif not ok:
        warnings.warn(TargetMissed(message), stacklevel=2)
