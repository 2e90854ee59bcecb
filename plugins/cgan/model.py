"""Conditional GAN with label embedding, after the course report ../shared/seeds/004_*.txt.

The label enters both networks as the report did it: Embedding(n_classes, 50) -> Linear to
H*W -> one extra feature map, concatenated as a channel (in G at the first, smallest feature
map; in D at the input image).

The networks around that conditioning are DCGAN bodies (plugins/dcgan): G is a 4x4 (7x7 for
28 and 56 px) transposed convolution from z, BatchNorm and ReLU, then stride-2 transposed
convolutions up to the resolution and tanh; D is stride-2 convolutions with LeakyReLU(0.2)
down to the start size and one logit. The report's own Keras bodies (dense start, LeakyReLU,
no normalisation, dropout) collapsed on `shapes` 32x32 to uniform black images within 4 kimg
(measured), so only its conditioning carried over.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganzoo import DataSpec, option
from ganzoo.adversarial import GANArchitecture
from ganzoo.errors import GanzooError
from ganzoo_plugins.dcgan.model import DCGANConfig, channels_at, critic_norm, init_weights

EMBED_DIM = 50


def start_size(resolution: int) -> int:
    """The smallest feature map, between 4 and 7, that doubles up to ``resolution``."""
    size = resolution
    while size > 7:
        if size % 2:
            raise GanzooError(f"cgan cannot train at resolution {resolution}: it must be "
                              "a number from 4 to 7 doubled (28, 32, 48, 56, 64)")
        size //= 2
    return size


class LabelMap(nn.Module):
    """label -> Embedding(n, 50) -> Linear(50, size*size) -> [N, 1, size, size]."""

    def __init__(self, num_classes: int, size: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, EMBED_DIM)
        self.linear = nn.Linear(EMBED_DIM, size * size)
        self.size = size

    def forward(self, labels: Tensor) -> Tensor:
        return self.linear(self.embed(labels)).view(-1, 1, self.size, self.size)


def widths(resolution: int, base: int, cap: int) -> dict[int, int]:
    """Channels per feature-map size: ``base`` just below full resolution, doubling per
    halving, at most ``cap`` (as in dcgan)."""
    sizes, s = [], start_size(resolution)
    while s < resolution:
        sizes.append(s)
        s *= 2
    return {s: channels_at(s, resolution, base, cap) for s in sizes}


class Generator(nn.Module):
    def __init__(self, latent_dim: int, num_classes: int, resolution: int, channels: int,
                 base: int, cap: int):
        super().__init__()
        ch = widths(resolution, base, cap)
        s = self.s = start_size(resolution)
        self.stem = nn.Sequential(nn.ConvTranspose2d(latent_dim, ch[s], s, 1, 0, bias=False),
                                  nn.BatchNorm2d(ch[s]), nn.ReLU(inplace=True))
        self.label = LabelMap(num_classes, s)
        layers: list[nn.Module] = []
        cin = ch[s] + 1
        while s * 2 < resolution:
            layers += [nn.ConvTranspose2d(cin, ch[s * 2], 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ch[s * 2]), nn.ReLU(inplace=True)]
            cin, s = ch[s * 2], s * 2
        layers += [nn.ConvTranspose2d(cin, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        h = self.stem(z[:, :, None, None])
        return self.net(torch.cat([h, self.label(labels)], dim=1))


class Discriminator(nn.Module):
    def __init__(self, num_classes: int, resolution: int, channels: int, base: int, cap: int,
                 norm: str = "batch"):
        super().__init__()
        ch = widths(resolution, base, cap)
        self.label = LabelMap(num_classes, resolution)
        s, smallest = resolution // 2, start_size(resolution)
        layers: list[nn.Module] = [nn.Conv2d(channels + 1, ch[s], 4, 2, 1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        while s > smallest:
            layers += [nn.Conv2d(ch[s], ch[s // 2], 4, 2, 1, bias=False),
                       critic_norm(norm, ch[s // 2]), nn.LeakyReLU(0.2, inplace=True)]
            s //= 2
        layers.append(nn.Conv2d(ch[s], 1, s, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        return self.net(torch.cat([images, self.label(labels)], dim=1)).flatten()


@dataclass
class CGANConfig(DCGANConfig):
    """cgan's options are dcgan's: its networks are DCGAN bodies."""


class CGAN(GANArchitecture):
    """Conditional GAN with label embedding: `ganzoo generate --class K`."""

    name = "cgan"
    Config = CGANConfig
    conditional = True
    default_batch = 32
    default_kimg = 200.0

    def __init__(self, config: CGANConfig, data: DataSpec, device: torch.device):
        super().__init__(config, data, device)
        if not 28 <= data.resolution <= 64:
            raise GanzooError(f"cgan trains at resolutions 28 to 64, not {data.resolution}")
        c, n = config, max(1, data.num_classes)
        G = Generator(c.latent_dim, n, data.resolution, data.channels, c.base_channels,
                      c.max_channels)
        D = Discriminator(n, data.resolution, data.channels, c.base_channels, c.max_channels,
                          "layer" if c.loss == "wgan-gp" else "batch")
        G.apply(init_weights)
        D.apply(init_weights)
        self.setup_training(G, D, c.lr, (c.beta1, c.beta2), c.adversarial_setup(c.latent_dim),
                            c.ema_kimg)

    def g_forward(self, z: Tensor, labels: Tensor | None, G: nn.Module | None = None) -> Tensor:
        return (self.G if G is None else G)(z, labels)

    def d_forward(self, images: Tensor, labels: Tensor | None, D=None) -> Tensor:
        return (self.D if D is None else D)(images, labels)

    def generate(self, n: int, *, seed: int | None = None, labels: Tensor | None = None,
                 **options) -> Tensor:
        if labels is None:   # no class asked for: cycle through the classes
            labels = torch.arange(n, device=self.device) % max(1, self.data.num_classes)
        return super().generate(n, seed=seed, labels=labels, **options)
