import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session", autouse=True)
def ganzoo_home(tmp_path_factory):
    os.environ.setdefault("GANZOO_HOME", str(tmp_path_factory.mktemp("ganzoo-home")))
