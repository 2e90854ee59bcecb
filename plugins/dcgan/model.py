"""DCGAN: strided convolutions, BatchNorm, ReLU in G, LeakyReLU(0.2) in D, tanh output.

Layout follows Radford et al. and the thesis' tables 3.2/3.3 (../shared/seeds/000_*.txt):
G maps z [N, latent, 1, 1] through a 4x4 transposed convolution, then doubles the resolution
with 4x4 stride-2 transposed convolutions; D mirrors it with stride-2 convolutions down to 4x4
and a final 4x4 convolution to one logit. Widths double as resolution halves, capped at
``max_channels``. No BatchNorm on G's output or D's input; weights N(0, 0.02).

``--loss wgan-gp`` trains it as the course report (../shared/seeds/001_*.txt) did: a critic
without sigmoid and with LayerNorm in place of BatchNorm (the gradient penalty is per sample,
which batch statistics would break), 5 critic updates per generator update.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganzoo import DataSpec, option
from ganzoo.adversarial import GANArchitecture, LossOptions


def channels_at(size: int, resolution: int, base: int, cap: int) -> int:
    """Feature maps of ``size`` x ``size`` get ``base`` channels just below full resolution,
    twice as many per halving, at most ``cap``."""
    return min(cap, base * resolution // (2 * size))


class Generator(nn.Module):
    def __init__(self, latent_dim: int, resolution: int, channels: int, base: int, cap: int):
        super().__init__()
        ch = lambda s: channels_at(s, resolution, base, cap)  # noqa: E731
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, ch(4), 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(ch(4)), nn.ReLU(inplace=True)]
        size = 4
        while size * 2 < resolution:
            layers += [nn.ConvTranspose2d(ch(size), ch(size * 2), 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ch(size * 2)), nn.ReLU(inplace=True)]
            size *= 2
        layers += [nn.ConvTranspose2d(ch(size), channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])


def critic_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm, or LayerNorm over (C, H, W) with a per-channel affine (GroupNorm with one
    group is exactly that), which keeps every sample's output independent of the batch."""
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(1, channels)


class Discriminator(nn.Module):
    def __init__(self, resolution: int, channels: int, base: int, cap: int,
                 norm: str = "batch"):
        super().__init__()
        ch = lambda s: channels_at(s, resolution, base, cap)  # noqa: E731
        size = resolution // 2
        layers: list[nn.Module] = [nn.Conv2d(channels, ch(size), 4, 2, 1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        while size > 4:
            layers += [nn.Conv2d(ch(size), ch(size // 2), 4, 2, 1, bias=False),
                       critic_norm(norm, ch(size // 2)), nn.LeakyReLU(0.2, inplace=True)]
            size //= 2
        layers.append(nn.Conv2d(ch(4), 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten()


def init_weights(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: N(0, 0.02) weights, BatchNorm scale N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@dataclass
class DCGANConfig(LossOptions):
    latent_dim: int = option(100, "size of z (the seeds used 100 and 128)", at_least=1)
    base_channels: int = option(64, "channels of the layers next to full resolution",
                                at_least=1)
    max_channels: int = option(512, "cap on channels at low resolution", at_least=1)
    lr: float = option(2e-4, "Adam learning rate (G and D)", above=0)
    beta1: float = option(0.5, "Adam beta1", at_least=0, below=1)
    beta2: float = option(0.999, "Adam beta2", at_least=0, below=1)


class DCGAN(GANArchitecture):
    """Deep convolutional GAN (Radford et al. 2016); --loss picks the objective."""

    name = "dcgan"
    Config = DCGANConfig
    resolutions = (32, 64, 128, 256)
    # The paper used batch 128; short CPU runs learn faster with more, smaller steps per kimg
    # (measured on shapes 32x32 at 20 kimg: batch 64 collapsed onto one shape class).
    default_batch = 32
    default_kimg = 200.0

    def __init__(self, config: DCGANConfig, data: DataSpec, device: torch.device):
        super().__init__(config, data, device)
        c = config
        G = Generator(c.latent_dim, data.resolution, data.channels, c.base_channels,
                      c.max_channels)
        D = Discriminator(data.resolution, data.channels, c.base_channels, c.max_channels,
                          "layer" if c.loss == "wgan-gp" else "batch")
        G.apply(init_weights)
        D.apply(init_weights)
        self.setup_training(G, D, c.lr, (c.beta1, c.beta2), c.adversarial_setup(c.latent_dim),
                            c.ema_kimg)
