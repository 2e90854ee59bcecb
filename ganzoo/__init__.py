"""ganzoo: a GAN zoo for PyTorch. Architectures are plugins behind one train/generate interface.

Public API::

    import ganzoo
    ganzoo.list_architectures("wgan*")
    model = ganzoo.create("dcgan", ganzoo.DataSpec(32, 3), latent_dim=128)
    ckpt = ganzoo.load_checkpoint("runs/00000-dcgan-shapes/checkpoints/ckpt-000020032.pt")
    images = ckpt.model.generate(16, seed=0)
"""
from __future__ import annotations

import dataclasses
import fnmatch

import torch

from ganzoo.architecture import Architecture, DataSpec, check_config, option
from ganzoo.errors import GanzooError
from ganzoo.hookspecs import hookimpl
# The plugin API: what the hooks return and what a plugin builds on. These modules import
# nothing from this package's namespace (only its submodules), so there is no import cycle;
# tests/test_plugins.py imports each name in a fresh interpreter to keep it that way.
from ganzoo.adversarial import GANArchitecture
from ganzoo.augment.registry import register_augmentation
from ganzoo.data.source import DatasetSource, ImageSet, PrepareOptions
from ganzoo.features import FeatureExtractor
from ganzoo.importers import CheckpointImporter

__version__ = "0.1.0"

__all__ = ["Architecture", "CheckpointImporter", "DataSpec", "DatasetSource",
           "FeatureExtractor", "GANArchitecture", "GanzooError", "ImageSet", "PrepareOptions",
           "create", "hookimpl", "list_architectures", "load_checkpoint", "option",
           "register_augmentation", "train"]


def list_architectures(pattern: str = "*") -> list[str]:
    """Names of the registered architectures matching a shell-style pattern, sorted."""
    from ganzoo.registry import get_registry
    return sorted(n for n in get_registry().architectures() if fnmatch.fnmatch(n, pattern))


def create(name: str, data: DataSpec, device: str | torch.device = "cpu",
           **overrides) -> Architecture:
    """Build architecture ``name`` for ``data``; keyword overrides set Config fields
    (``None`` values are dropped, so CLI-style plumbing can pass every option)."""
    from ganzoo.registry import get_registry
    cls = get_registry().architecture(name)
    config = make_config(cls, {k: v for k, v in overrides.items() if v is not None})
    return cls(config, data, torch.device(device))


def make_config(cls: type[Architecture], values: dict):
    names = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise GanzooError(f"{cls.name} has no option(s) {', '.join(unknown)}")
    config = cls.Config(**values)
    check_config(config)
    return config


def train(name: str, *, data: str | None = None, resume: str | None = None,
          trust: bool = False, quiet: bool = True, **options):
    """Train architecture ``name`` as ``ganzoo train NAME`` would and return the run
    directory. ``options``: trainer options by TrainConfig's names (kimg, batch, resolution,
    out, init, ...) and the architecture's own; ``resume``: latest | RUN | CKPT.

    ``ganzoo.train("dcgan", data="shapes", resolution=32, kimg=1)``"""
    from ganzoo.launch import make_trainer, request_for
    from ganzoo.registry import get_registry
    registry = get_registry()
    cls = registry.architecture(name)
    if data is not None:
        options["data"] = data
    request = request_for(cls, options, resume=resume, trust=trust)
    return make_trainer(request, registry, quiet=quiet).run()


def load_checkpoint(path, *, trust: bool = False, device: str | torch.device = "cpu"):
    """Load a checkpoint file and rebuild its model; see :mod:`ganzoo.checkpoint`."""
    from ganzoo.checkpoint import load_model
    return load_model(path, trust=trust, device=torch.device(device))
