"""Every benchmark runs in pytest-benchmark's smoke mode, --benchmark-disable, where
benchmark.stats is None (issue 21, item 14), on small shapes (benchmarks/bench_util.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmarks_run_in_smoke_mode(tmp_path):
    # The timeout is the "quickly": the full benchmarks take many minutes on 2 cores, the
    # smoke run about one (most of it building the C++ ops once per GANZOO_HOME). Its own
    # GANZOO_HOME: ops it builds into the session's would be picked up by "auto" in later
    # tests, and tests/test_ops_native.py's build into a fresh cache would not happen.
    done = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--benchmark-disable",
                           "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "GANZOO_BENCH_STRICT": "0",
                               "GANZOO_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
