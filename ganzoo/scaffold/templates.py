"""The files ``ganzoo plugin new`` writes, as string.Template texts ($name, $module, $cls,
$dist, $ganzoo_version): Python code has braces everywhere and dollar signs nowhere."""
from __future__ import annotations

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "$name: a ganzoo architecture plugin"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["ganzoo>=$ganzoo_version"]

[project.optional-dependencies]
test = ["pytest>=8"]

# How ganzoo finds the plugin: `ganzoo train $name` works once this package is installed.
[project.entry-points.ganzoo]
$name = "$module"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

INIT = '''\
"""$name: a ganzoo plugin. ganzoo loads this module through the "ganzoo" entry point and
calls its hooks (see ganzoo.hookspecs for all of them)."""
import ganzoo

from $module.model import $cls


@ganzoo.hookimpl
def ganzoo_architectures():
    return [$cls]
'''

GAN_MODEL = '''\
"""A small DCGAN-style GAN. GANArchitecture does the training step, sampling, EMA and
state_dict; a G/D GAN only builds its two networks."""
import math
from dataclasses import dataclass

from torch import nn

import ganzoo
from ganzoo.adversarial import AdversarialSetup, GANArchitecture


@dataclass
class Config:       # each field is a `ganzoo train $name` option: --latent-dim, --width, --lr
    latent_dim: int = ganzoo.option(64, "size of z", at_least=1)
    width: int = ganzoo.option(32, "channels next to full resolution", at_least=1)
    lr: float = ganzoo.option(2e-4, "Adam learning rate of G and D", above=0)


def widths(width: int, resolution: int) -> list[int]:
    """Channels from full resolution down to 4x4, doubling per halving."""
    return [width * 2 ** i for i in range(int(math.log2(resolution)) - 1)]


def generator(latent_dim: int, width: int, resolution: int, channels: int) -> nn.Module:
    ch = widths(width, resolution)[::-1]                    # widest at 4x4
    layers = [nn.Unflatten(1, (latent_dim, 1, 1)), nn.ConvTranspose2d(latent_dim, ch[0], 4),
              nn.BatchNorm2d(ch[0]), nn.ReLU()]
    for cin, cout in zip(ch, ch[1:]):
        layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers, nn.Conv2d(ch[-1], channels, 3, padding=1), nn.Tanh())


def discriminator(width: int, resolution: int, channels: int) -> nn.Module:
    ch = widths(width, resolution)
    layers = [nn.Conv2d(channels, ch[0], 3, padding=1), nn.LeakyReLU(0.2)]
    for cin, cout in zip(ch, ch[1:]):
        layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(ch[-1] * 16, 1), nn.Flatten(0))


class $cls(GANArchitecture):
    """$name: a small DCGAN-style GAN (written by `ganzoo plugin new`)."""

    name = "$name"
    Config = Config
    resolutions = (8, 16, 32, 64, 128, 256)
    default_batch = 32
    default_kimg = 100.0

    def __init__(self, config: Config, data: ganzoo.DataSpec, device):
        super().__init__(config, data, device)
        G = generator(config.latent_dim, config.width, data.resolution, data.channels)
        D = discriminator(config.width, data.resolution, data.channels)
        self.setup_training(G, D, config.lr, (0.5, 0.999),
                            AdversarialSetup(latent_dim=config.latent_dim))
'''

MINIMAL_MODEL = '''\
"""The bare Architecture interface, filled in as simply as it goes: a linear generator fitted
to the per-pixel mean and spread of the data. Replace the networks and the loss with yours."""
from dataclasses import dataclass

import torch
from torch import nn

import ganzoo


@dataclass
class Config:       # each field is a `ganzoo train $name` option: --latent-dim, --lr
    latent_dim: int = ganzoo.option(16, "size of z", at_least=1)
    lr: float = ganzoo.option(1e-3, "Adam learning rate", above=0)


class $cls(ganzoo.Architecture):
    """$name: a minimal architecture (written by `ganzoo plugin new --template minimal`)."""

    name = "$name"
    Config = Config
    default_batch = 16
    default_kimg = 10.0

    def __init__(self, config: Config, data: ganzoo.DataSpec, device):
        super().__init__(config, data, device)
        pixels = data.channels * data.resolution ** 2
        # Attributes, so optimizers() and networks() find them (they scan vars(self)).
        self.G = nn.Sequential(nn.Linear(config.latent_dim, pixels), nn.Tanh()).to(self.device)
        self.opt = torch.optim.Adam(self.G.parameters(), lr=config.lr)

    def images(self, z: torch.Tensor) -> torch.Tensor:
        d = self.data
        return self.G(z).view(-1, d.channels, d.resolution, d.resolution)

    def train_step(self, reals, labels):
        # reals: this rank's minibatch on self.device, NCHW in [-1, 1]; training may use the
        # global RNG (the trainer saves and restores it).
        fakes = self.images(torch.randn(len(reals), self.config.latent_dim, device=self.device))
        loss = ((fakes.mean(0) - reals.mean(0)).square().mean()
                + (fakes.std(0) - reals.std(0)).square().mean())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def generate(self, n, *, seed=None, labels=None, **options):
        # The same seed, the same images; never the global RNG (seeded_normal).
        return self.images(self.seeded_normal(n, self.config.latent_dim, seed))

    def state_dict(self):
        # Tensors and plain data only: checkpoints load with torch.load(weights_only=True).
        return {"G": self.G.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state):
        self.G.load_state_dict(state["G"])
        self.opt.load_state_dict(state["opt"])
'''

TEST = '''\
"""ganzoo's plugin contract, run on $cls: `pytest` (every test is named for one promise:
determinism, weights_only checkpoints, resume equal to an uninterrupted run, ...)."""
from ganzoo.testing import ArchitectureContract

from $module.model import $cls


class Test$cls(ArchitectureContract):
    architecture = $cls
    small = $small          # a config small enough that each test takes a moment
'''

README = '''\
# $dist

`$name`, an architecture plugin for [ganzoo](https://pypi.org/project/ganzoo/), written by
`ganzoo plugin new`.

```sh
pip install -e .              # registers the plugin: `ganzoo list` shows $name
pytest                        # ganzoo's plugin contract (ganzoo.testing)
ganzoo train $name --data shapes --resolution 16 --kimg 1
ganzoo generate $name --seeds 0-15
```

- `src/$module/model.py`: the architecture. Its `Config` fields are the options of
  `ganzoo train $name` (`ganzoo train $name --help`).
- `src/$module/__init__.py`: the hooks ganzoo calls (the `ganzoo` entry point in
  pyproject.toml points at this module).
- `tests/test_$module.py`: the contract; set `small` to a config that trains in a moment.

To publish: `python -m build` and `twine upload dist/*`; users `pip install $dist`.
'''
