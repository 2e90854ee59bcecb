"""Conditional GAN with label embedding, after the course report ../shared/seeds/004_*.txt.

The label enters both networks the same way: Embedding(n_classes, 50) -> Linear to H*W ->
one extra feature map, concatenated as a channel.

- G: z -> Linear -> LeakyReLU -> s x s x width (s = 4..7, so 28 -> 7, 32 -> 4, 64 -> 4),
  concat the label map, then [4x4 stride-2 transposed conv, LeakyReLU(0.2)] up to the
  resolution, then a 7x7 conv with tanh.
- D: image + label map -> [3x3 stride-2 conv, LeakyReLU(0.2)] down to 7 or 8 pixels ->
  flatten -> Dropout -> Linear -> one logit (the sigmoid lives in the loss).

No BatchNorm anywhere, as in the report; Adam lr 2e-4, beta1 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganzoo import DataSpec, option
from ganzoo.adversarial import GANArchitecture, LossOptions
from ganzoo.errors import GanzooError

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


class Generator(nn.Module):
    def __init__(self, latent_dim: int, num_classes: int, resolution: int, channels: int,
                 width: int):
        super().__init__()
        s = start_size(resolution)
        self.s, self.width = s, width
        self.fc = nn.Sequential(nn.Linear(latent_dim, width * s * s), nn.LeakyReLU(0.2))
        self.label = LabelMap(num_classes, s)
        layers: list[nn.Module] = []
        cin = width + 1
        while s < resolution:
            layers += [nn.ConvTranspose2d(cin, width, 4, 2, 1), nn.LeakyReLU(0.2)]
            cin, s = width, s * 2
        layers += [nn.Conv2d(width, channels, 7, padding=3), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        h = self.fc(z).view(-1, self.width, self.s, self.s)
        return self.net(torch.cat([h, self.label(labels)], dim=1))


class Discriminator(nn.Module):
    def __init__(self, num_classes: int, resolution: int, channels: int, width: int,
                 dropout: float):
        super().__init__()
        self.label = LabelMap(num_classes, resolution)
        layers: list[nn.Module] = []
        cin, s = channels + 1, resolution
        while s > 8 or not layers:
            layers += [nn.Conv2d(cin, width, 3, 2, 1), nn.LeakyReLU(0.2)]
            cin, s = width, (s + 1) // 2
        layers += [nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * s * s, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        return self.net(torch.cat([images, self.label(labels)], dim=1)).flatten()


@dataclass
class CGANConfig(LossOptions):
    latent_dim: int = option(100, "size of z")
    width: int = option(128, "filters of every conv layer (the report used 128)")
    dropout: float = option(0.4, "dropout before D's output layer")
    lr: float = option(2e-4, "Adam learning rate")
    beta1: float = option(0.5, "Adam beta1")
    beta2: float = option(0.999, "Adam beta2")


class CGAN(GANArchitecture):
    """Conditional GAN with label embedding: `ganzoo generate --class K`."""

    name = "cgan"
    Config = CGANConfig
    conditional = True
    default_batch = 64
    default_kimg = 200.0

    def __init__(self, config: CGANConfig, data: DataSpec, device: torch.device):
        super().__init__(config, data, device)
        if not 28 <= data.resolution <= 64:
            raise GanzooError(f"cgan trains at resolutions 28 to 64, not {data.resolution}")
        c, n = config, max(1, data.num_classes)
        self.setup_training(
            Generator(c.latent_dim, n, data.resolution, data.channels, c.width),
            Discriminator(n, data.resolution, data.channels, c.width, c.dropout),
            c.lr, (c.beta1, c.beta2), c.adversarial_setup(c.latent_dim), c.ema_kimg)

    def g_forward(self, z: Tensor, labels: Tensor | None, G: nn.Module | None = None) -> Tensor:
        return (G or self.G)(z, labels)

    def d_forward(self, images: Tensor, labels: Tensor | None) -> Tensor:
        return self.D(images, labels)

    def generate(self, n: int, *, seed: int | None = None, labels: Tensor | None = None,
                 **options) -> Tensor:
        if labels is None:   # no class asked for: cycle through the classes
            labels = torch.arange(n, device=self.device) % max(1, self.data.num_classes)
        return super().generate(n, seed=seed, labels=labels, **options)
