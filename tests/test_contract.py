"""Every built-in plugin passes ganzoo's plugin contract (ganzoo.testing), the one a
third-party plugin's tests run. Parametrised over what the registry holds, as timm's tests run
over list_models(): a new built-in is collected at once, and fails until it has a small
config here."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import ganzoo
from ganzoo.data.builtin import BinObjectsSource, ShapesSource
from ganzoo.registry import get_registry, reset_registry
from ganzoo.testing import (ArchitectureContract, DatasetSourceContract,
                            FeatureExtractorContract)


def builtin(table: str) -> list[str]:
    """Names a table of the registry holds from ganzoo's own distribution (third-party
    plugins installed next to it bring their own contract tests)."""
    reg = get_registry()
    try:
        return sorted(n for n, r in getattr(reg, table)().items()
                      if r.plugin.distribution == "ganzoo")
    finally:
        reset_registry()


def dream_args(checkpoint: Path, workdir: Path) -> list[str]:
    """deepdream takes a photo, not seeds (its GenerateConfig): a short dream on noise."""
    from PIL import Image
    photo = workdir / "photo.png"
    pixels = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(photo)
    return ["deepdream", "--checkpoint", str(checkpoint), "--input", str(photo),
            "--iterations", "1", "--octaves", "0", "--out", str(workdir / "generated"),
            "--device", "cpu"]


@dataclass(frozen=True)
class Case:
    arch: str
    small: dict
    data: ganzoo.DataSpec
    not_applicable: dict = field(default_factory=dict)
    generate_args: Callable | None = None


LABELLED_32 = ganzoo.DataSpec(32, 3, 3, ("a", "b", "c"))
DCGAN_SMALL = dict(base_channels=8, max_channels=16, latent_dim=16)   # tests/conftest TINY_DCGAN
STYLEGAN2_SMALL = dict(cfg="tiny", cbase=256, cmax=16, z_dim=16, w_dim=16)
CASES = {
    "dcgan": Case("dcgan", DCGAN_SMALL, ganzoo.DataSpec(32, 3)),
    "wgan-gp": Case("wgan-gp", dict(dim=8, latent_dim=16), ganzoo.DataSpec(32, 3)),
    "cgan": Case("cgan", DCGAN_SMALL, LABELLED_32),
    "stylegan2-ada": Case("stylegan2-ada", STYLEGAN2_SMALL, ganzoo.DataSpec(16, 3)),
    "stylegan2-ada-cond": Case("stylegan2-ada", {**STYLEGAN2_SMALL, "cond": True},
                               ganzoo.DataSpec(16, 3, 3, ("a", "b", "c"))),
    # A classifier whose generate dreams on seeded noise: every promise holds, only the CLI
    # path differs (it takes a photo).
    "deepdream": Case("deepdream", dict(width=4, blocks=2), LABELLED_32,
                      generate_args=dream_args),
}
VARIANTS = ["stylegan2-ada-cond"]     # the conditional path of an architecture with --cond


class TestBuiltinArchitectures(ArchitectureContract):
    @pytest.fixture(autouse=True, params=builtin("architectures") + VARIANTS)
    def case(self, request):
        case = CASES.get(request.param)
        if case is None:
            pytest.fail(f"built-in architecture {request.param} has no small config: add one "
                        "to CASES in tests/test_contract.py")
        self.architecture = get_registry().architecture(case.arch)
        self.small, self.data = case.small, case.data
        self.not_applicable = case.not_applicable
        self.case_generate_args = case.generate_args

    def cli_generate_args(self, checkpoint, workdir):
        if self.case_generate_args is not None:
            return self.case_generate_args(checkpoint, workdir)
        return super().cli_generate_args(checkpoint, workdir)


SOURCES = {"shapes": ShapesSource("plain"), "shapes/colour": ShapesSource("colour"),
           "bin-objects": BinObjectsSource("kind"), "bin-objects/count": BinObjectsSource("count")}
# Sources that download their images (mnist, cifar10, places/...) stay out of the test suite:
# it runs offline. test_data.py covers them against a local server.
DOWNLOADED = {"mnist", "fashion-mnist", "cifar10", "flowers102", "places/"}


class TestBuiltinDatasetSources(DatasetSourceContract):
    @pytest.fixture(autouse=True, params=[n for n in builtin("datasets") if n not in DOWNLOADED])
    def case(self, request):
        if request.param not in SOURCES:
            pytest.fail(f"built-in data source {request.param} is not in SOURCES or "
                        "DOWNLOADED in tests/test_contract.py")
        self.source = SOURCES[request.param]


class TestBuiltinFeatureExtractors(FeatureExtractorContract):
    @pytest.fixture(autouse=True, params=builtin("feature_extractors"))
    def case(self, request):
        self.extractor = get_registry().feature_extractors()[request.param].obj


def test_every_case_names_a_builtin():
    """A renamed built-in does not leave a stale case behind."""
    assert {c.arch for c in CASES.values()} <= set(builtin("architectures"))


def test_ganzoo_cli_fixture_runs_in_process_and_returns_code_and_output(ganzoo_cli, tmp_path):
    """The fixture plugin authors get (pytest11 entry point): code, out, err, like pytester."""
    code, out, err = ganzoo_cli("list")
    assert code == 0 and "dcgan" in out and not err
    result = ganzoo_cli("train", "no-such-gan")
    assert result.code == 1 and "unknown architecture" in result.err
    assert Path.cwd() == tmp_path
