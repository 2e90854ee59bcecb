import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import bench_util  # noqa: E402  (after the path above)


def pytest_configure(config):
    # Before collection: module-level shapes read it (bench_util.small).
    bench_util.SMOKE = bool(config.getoption("benchmark_disable", False))


@pytest.fixture(scope="session", autouse=True)
def ganzoo_home(tmp_path_factory):
    os.environ.setdefault("GANZOO_HOME", str(tmp_path_factory.mktemp("ganzoo-home")))
