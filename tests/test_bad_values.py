"""Bad option values: one `error:` line and exit 1 before a run directory is made (issue 21,
item 9), and `generate` writes images as it makes them."""
from __future__ import annotations

import dataclasses
import math
import typing

import pytest

import ganzoo
from ganzoo.architecture import Architecture
from ganzoo.cli import optional_inner
from ganzoo.errors import GanzooError
from ganzoo.registry import Registry
from conftest import TINY_DCGAN
from test_cli_errors import assert_one_line_error

FAST = [*TINY_DCGAN, "--kimg", "0.016", "-q"]


def no_run_dirs(tmp_path) -> bool:
    runs = tmp_path / "runs"
    return not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("option, value, fragment", [
    ("--tick", "1e-9", "--tick"), ("--tick", "inf", "--tick"),
    ("--snap", "1e-9", "--snap"), ("--snap", "inf", "--snap"),
    ("--batch", str(10 ** 12), "--batch"),
    ("--resolution", "100000", "--resolution"),
    ("--device", "foo", "--device foo"), ("--device", "mps", "--device mps"),
    ("--device", "meta", "--device meta"), ("--device", "cuda:99", "--device cuda:99"),
    ("--seed", str(2 ** 64), "--seed"),
    ("--latent-dim", "0", "--latent-dim"), ("--lr", "nan", "--lr"),
    ("--beta1", "inf", "--beta1"), ("--ema-kimg", "nan", "--ema-kimg"),
])
def test_bad_train_value_is_one_line_and_makes_no_run(cli, tmp_path, option, value, fragment):
    args = [a for a in FAST]
    if option in args:          # replace the tiny setting rather than give it twice
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    r = cli("train", "dcgan", "--data", "shapes", *args)
    assert_one_line_error(r, fragment)
    assert no_run_dirs(tmp_path), list((tmp_path / "runs").iterdir())


def test_resolution_an_architecture_cannot_train_fails_before_preparing(cli, tmp_path):
    r = cli("train", "dcgan", "--data", "shapes", "--resolution", "2048", "--kimg", "0.016")
    assert_one_line_error(r, "cannot train at resolution 2048")
    assert no_run_dirs(tmp_path)


def numeric_fields(cls: type[Architecture]):
    hints = typing.get_type_hints(cls.Config)
    for f in dataclasses.fields(cls.Config):
        kind = optional_inner(hints[f.name])
        if kind in (int, float):
            yield f.name, kind


BUILTIN = sorted(Registry().architectures())


@pytest.mark.parametrize("arch", BUILTIN)
def test_every_builtin_config_rejects_nan_and_negative_values(arch):
    """Every numeric option of every built-in architecture: nan, inf (floats) and -1 are
    refused with a GanzooError naming the option, before any network is built."""
    cls = Registry().architecture(arch)
    fields = list(numeric_fields(cls))
    assert fields
    for name, kind in fields:
        flag = "--" + name.replace("_", "-")
        bad = [-1] + ([math.nan, math.inf] if kind is float else [])
        for value in bad:
            with pytest.raises(GanzooError, match=flag):
                ganzoo.make_config(cls, {name: value})


@pytest.mark.parametrize("arch, option, value", [
    ("cgan", "--base-channels", "0"), ("wgan-gp", "--n-critic", "0"),
    ("wgan-gp", "--lr", "nan"), ("stylegan2-ada", "--gamma", "inf"),
    ("deepdream", "--width", "0"), ("deepdream", "--lr", "nan"),
])
def test_bad_architecture_option_from_the_cli(cli, tmp_path, arch, option, value):
    r = cli("train", arch, "--data", "shapes", "--kimg", "0.016", option, value)
    assert_one_line_error(r, option)
    assert no_run_dirs(tmp_path)


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
    from ganzoo.cli import main
    from ganzoo.registry import reset_registry
    import os
    root = tmp_path_factory.mktemp("cgan")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        main(["train", "cgan", "--data", "shapes", *FAST])
    except SystemExit as e:
        assert e.code in (0, None)
    finally:
        os.chdir(cwd)
        reset_registry()
    return next((root / "runs").iterdir())


@pytest.mark.parametrize("seeds", [str(2 ** 64), f"0,{2 ** 64 + 5}", f"{2 ** 64 - 1}-{2 ** 64}",
                                   "0-100000000000"])
def test_seeds_out_of_range(cli, trained_run, seeds):
    r = cli("generate", "--checkpoint", str(trained_run), "--seeds", seeds)
    assert_one_line_error(r, "--seeds")


def test_largest_seed_works(cli, trained_run, tmp_path):
    r = cli("generate", "--checkpoint", str(trained_run), "--seeds", str(2 ** 64 - 1))
    assert r.code == 0, r.err


@pytest.mark.parametrize("label", [str(10 ** 30), "-1", "5"])
def test_class_out_of_range(cli, cgan_run, label):
    r = cli("generate", "--checkpoint", str(cgan_run), "--class", label, "--seeds", "0")
    assert_one_line_error(r, f"--class {label}")


def test_generate_writes_each_image_as_it_is_made(cli, trained_run, tmp_path, monkeypatch):
    """Interrupted after three images, the first three are on disk (none kept in memory)."""
    from ganzoo_plugins.dcgan.model import DCGAN
    made = []
    original = DCGAN.generate

    def generate(self, n, **kw):
        if len(made) == 3:
            raise RuntimeError("stopped here")
        made.append(kw.get("seed"))
        return original(self, n, **kw)

    monkeypatch.setattr(DCGAN, "generate", generate)
    r = cli("generate", "--checkpoint", str(trained_run), "--seeds", "0-1000000")
    assert r.code == 1 and "stopped here" in r.err
    assert sorted(p.name for p in (tmp_path / "generated").glob("*.png")) == \
        ["seed0000.png", "seed0001.png", "seed0002.png"]


def test_grid_size_is_capped(cli, trained_run, tmp_path):
    r = cli("generate", "--checkpoint", str(trained_run), "--seeds", "0-100000", "--grid")
    assert_one_line_error(r, "--grid", "images")
    assert not (tmp_path / "generated").exists()
