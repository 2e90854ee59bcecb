"""--resume pitfalls (issue 21, item 10): `latest` is the newest run, and --out is never
ignored silently."""
from __future__ import annotations

import shutil

from conftest import TINY_DCGAN
from test_cli_errors import assert_one_line_error


def copy_runs(trained_run, tmp_path):
    """A finished run 00000 under tmp_path/runs (the shared fixture stays untouched)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    return shutil.copytree(trained_run, runs / "00000-dcgan-shapes")


def test_resume_latest_does_not_extend_an_older_run(cli, trained_run, tmp_path):
    old = copy_runs(trained_run, tmp_path)
    killed = tmp_path / "runs" / "00001-dcgan-shapes"     # stopped before its first snapshot
    (killed / "samples").mkdir(parents=True)
    shutil.copy(old / "config.json", killed / "config.json")
    before = sorted(p.name for p in (old / "checkpoints").iterdir())
    r = cli("train", "dcgan", "--resume", "latest", "--kimg", "0.2", "-q")
    assert_one_line_error(r, "00001-dcgan-shapes", "no checkpoint")
    assert sorted(p.name for p in (old / "checkpoints").iterdir()) == before


def test_resume_latest_skips_runs_of_other_architectures(cli, trained_run, tmp_path):
    copy_runs(trained_run, tmp_path)
    other = tmp_path / "runs" / "00001-cgan-shapes"
    other.mkdir()
    r = cli("train", "dcgan", "--resume", "latest", "-q")
    assert r.code == 0, r.err


def test_resume_with_out_warns_that_the_run_continues_in_place(cli, trained_run, tmp_path):
    run = copy_runs(trained_run, tmp_path)
    ckpt = sorted((run / "checkpoints").glob("*.pt"))[-1]
    r = cli("train", "dcgan", "--resume", str(ckpt), "--out", "elsewhere", "-q")
    assert r.code == 0, r.err
    warning = [x for x in r.err.splitlines() if x.startswith("warning:")]
    assert len(warning) == 1 and "--out" in warning[0] and str(run.name) in warning[0], r.err
    assert not (tmp_path / "elsewhere").exists()


def test_resume_of_a_loose_checkpoint_uses_out(cli, trained_run, tmp_path):
    ckpt = sorted((trained_run / "checkpoints").glob("*.pt"))[-1]
    loose = shutil.copy(ckpt, tmp_path / "model.pt")
    r = cli("train", "dcgan", "--resume", str(loose), "--out", "elsewhere", "-q")
    assert r.code == 0, r.err
    assert "warning" not in r.err
    assert [p.name for p in (tmp_path / "elsewhere").iterdir()] == ["00000-dcgan-shapes"]
    assert not (tmp_path / "runs").exists()
