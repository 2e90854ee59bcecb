"""Bad input gets one readable line on stderr and exit 1, never a traceback."""
from __future__ import annotations

import shutil

import pytest
import torch

from conftest import TINY_DCGAN, TINY_PLUGIN


def assert_one_line_error(result, *fragments: str, code: int = 1):
    assert result.code == code, (result.code, result.err)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_architecture_suggests_nearest(cli):
    assert_one_line_error(cli("train", "dcgna", "--data", "shapes"),
                          "unknown architecture 'dcgna'", "did you mean 'dcgan'")


def test_unknown_architecture_in_generate(cli):
    assert_one_line_error(cli("generate", "dcgam"), "did you mean 'dcgan'")


def test_missing_data_path(cli):
    assert_one_line_error(cli("train", "dcgan", "--data", "./no/such/folder", *TINY_DCGAN),
                          "--data ./no/such/folder", "no such folder")


def test_unknown_data_name_lists_registered_sets(cli):
    assert_one_line_error(cli("train", "dcgan", "--data", "shapez"), "shapes")


def test_missing_data_option(cli):
    assert_one_line_error(cli("train", "dcgan"), "--data SPEC is required")


@pytest.mark.parametrize("kimg", ["-5", "0", "nan"])
def test_bad_kimg(cli, kimg):
    assert_one_line_error(cli("train", "dcgan", "--data", "shapes", "--kimg", kimg),
                          "--kimg must be > 0")


def test_unsupported_resolution(cli):
    assert_one_line_error(cli("train", "dcgan", "--data", "shapes", "--resolution", "48"),
                          "cannot train at resolution 48")


def test_class_on_unconditional_model(cli, trained_run):
    r = cli("generate", "--checkpoint", str(trained_run), "--class", "3")
    assert_one_line_error(r, "dcgan", "unconditional", "--class")


def test_truncated_checkpoint(cli, trained_run, tmp_path):
    good = sorted((trained_run / "checkpoints").glob("*.pt"))[-1]
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert_one_line_error(cli("generate", "--checkpoint", str(bad)), "unreadable", str(bad))
    assert_one_line_error(cli("train", "dcgan", "--resume", str(bad)), "unreadable")


def test_garbage_file_is_not_a_checkpoint(cli, tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    assert_one_line_error(cli("generate", "--checkpoint", str(path)), "unreadable")


def test_checkpoint_from_another_architecture(cli, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TINY_PLUGIN))
    r = cli("--plugin", "ganzoo_tiny", "train", "tiny-mlp", "--data", "shapes",
            "--resolution", "8", "--kimg", "0.016", "-q")
    assert r.code == 0, r.err
    ckpt = sorted((tmp_path / "runs").glob("*/checkpoints/*.pt"))[-1]
    r = cli("--plugin", "ganzoo_tiny", "train", "dcgan", "--resume", str(ckpt))
    assert_one_line_error(r, "from architecture 'tiny-mlp', not 'dcgan'")
    r = cli("--plugin", "ganzoo_tiny", "generate", "dcgan", "--checkpoint", str(ckpt))
    assert_one_line_error(r, "from architecture 'tiny-mlp', not 'dcgan'")


def test_checkpoint_needing_pickle_is_refused_without_trust(cli, trained_run, tmp_path):
    good = sorted((trained_run / "checkpoints").glob("*.pt"))[-1]
    data = torch.load(good, weights_only=True)
    data["note"] = shutil.Error("an arbitrary Python object")   # needs pickle to rebuild
    evil = tmp_path / "pickled.pt"
    torch.save(data, evil)
    assert_one_line_error(cli("generate", "--checkpoint", str(evil)), "--trust")
    r = cli("generate", "--checkpoint", str(evil), "--trust", "--seeds", "0")
    assert r.code == 0, r.err


def test_resume_latest_without_runs(cli):
    assert_one_line_error(cli("train", "dcgan", "--resume", "latest"), "no dcgan run")


def test_generate_without_runs(cli):
    assert_one_line_error(cli("generate"), "no run with a checkpoint")


@pytest.mark.parametrize("seeds", ["a-b", "5-2", "-3"])
def test_bad_seeds(cli, trained_run, seeds):
    assert_one_line_error(cli("generate", "--checkpoint", str(trained_run), "--seeds", seeds),
                          "--seeds")


def test_usage_error_is_one_line_exit_2(cli):
    r = cli("train", "dcgan", "--data", "shapes", "--batch", "many")
    assert r.code == 2
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def test_checkpoint_whose_weights_do_not_fit(cli, trained_run, tmp_path):
    good = sorted((trained_run / "checkpoints").glob("*.pt"))[-1]
    data = torch.load(good, weights_only=True)
    data["config"]["base_channels"] = 16          # weights were saved for 8
    bad = tmp_path / "mismatch.pt"
    torch.save(data, bad)
    assert_one_line_error(cli("generate", "--checkpoint", str(bad)), "does not fit dcgan")
    assert_one_line_error(cli("train", "dcgan", "--resume", str(bad)), "does not fit dcgan")
