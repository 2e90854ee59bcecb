"""A training run's FID falls over kimg (slow: about a CPU minute on an idle machine)."""
from __future__ import annotations

import json

import pytest

from conftest import run_ganzoo

pytestmark = pytest.mark.slow


def test_fid_falls_during_dcgan_training_on_shapes(tmp_path):
    done = run_ganzoo("train", "dcgan", "--data", "shapes", "--resolution", "32", "--kimg", "8",
                      "--snap", "1", "--metrics", "fid2k", "--metrics-every", "1",
                      "--metrics-extractor", "domain", "-q", cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr
    run = next((tmp_path / "runs").iterdir())
    lines = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    fids = [(x["kimg"], x["metrics"]["fid2k"]) for x in lines if "metrics" in x]
    print("\nFID (2k samples, domain extractor) over kimg: "
          + ", ".join(f"{k:g}: {v:.1f}" for k, v in fids))
    # Early samples are noise: the first evaluations go up and down (grey noise at 1 kimg
    # lies nearer the data than pink noise at 2); by 8 kimg the samples are blobs of the
    # data's colours and the FID is well below its first value.
    assert len(fids) == 8 and fids[0][0] == pytest.approx(1.024)
    assert fids[-1][1] < fids[0][1]
    assert (run / "report.html").exists()
