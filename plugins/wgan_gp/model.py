"""WGAN-GP: ResNet generator and critic from "Improved Training of Wasserstein GANs".

Layouts (the paper's CIFAR-10 and 64x64 ResNets):

- 32x32: G: z(128) -> linear -> 4x4x128 -> 3 up-blocks (128) -> BN, ReLU, conv3x3 -> tanh.
  Critic: a first down-block (3 -> 128), a down-block, two blocks at 8x8 -> ReLU -> mean over
  space -> linear.
- 64x64: G: z(128) -> linear -> 4x4x(8d) -> up-blocks 8d, 4d, 2d, d -> BN, ReLU, conv3x3 ->
  tanh. Critic: conv3x3 (3 -> d) -> down-blocks 2d, 4d, 8d, 8d -> linear; d = 64.

Residual blocks: pre-activation (norm, ReLU, conv3x3, norm, ReLU, conv3x3); up-blocks upsample
by nearest neighbour before the first conv, down-blocks mean-pool after the second; shortcuts
are a 1x1 conv with the same resampling. The critic uses LayerNorm or no normalisation, never
BatchNorm (the penalty is per sample). Training: Algorithm 1 (lambda 10, n_critic 5, Adam
lr 1e-4, betas (0, 0.9)), eps ~ U[0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo import DataSpec, option
from ganzoo.adversarial import AdversarialSetup, EMAOptions, GANArchitecture


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)   # LayerNorm over (C, H, W), per-channel affine
    return nn.Identity()


class ResBlock(nn.Module):
    """Pre-activation residual block that resamples by ``resample`` ('up', 'down', None)."""

    def __init__(self, cin: int, cout: int, resample: str | None, norm: str,
                 first: bool = False):
        super().__init__()
        self.resample, self.first = resample, first
        # The critic's first block sees raw pixels: no norm/ReLU before its first conv.
        self.norm1 = nn.Identity() if first else _norm(norm, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout or resample else nn.Identity()

    def _resample(self, x: Tensor) -> Tensor:
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x: Tensor) -> Tensor:
        h = x if self.first else F.relu(self.norm1(x))
        if self.resample == "up":
            h = self._resample(h)
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        if self.resample == "down":
            h = self._resample(h)
        if self.resample == "up":
            skip = self.shortcut(self._resample(x))
        else:
            skip = self._resample(self.shortcut(x))
        return skip + h


def _widths(resolution: int, dim: int) -> tuple[list[int], list[int]]:
    """Channel widths of G's up-blocks and the critic's blocks."""
    if resolution == 32:
        return [dim] * 4, [dim] * 4
    return [8 * dim, 8 * dim, 4 * dim, 2 * dim, dim], [dim, 2 * dim, 4 * dim, 8 * dim, 8 * dim]


class Generator(nn.Module):
    def __init__(self, latent_dim: int, resolution: int, channels: int, dim: int):
        super().__init__()
        widths, _ = _widths(resolution, dim)
        self.c0 = widths[0]
        self.fc = nn.Linear(latent_dim, 4 * 4 * widths[0])
        self.blocks = nn.Sequential(*[ResBlock(a, b, "up", "batch")
                                      for a, b in zip(widths[:-1], widths[1:])])
        self.out = nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.ReLU(),
                                 nn.Conv2d(widths[-1], channels, 3, padding=1), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        return self.out(self.blocks(self.fc(z).view(-1, self.c0, 4, 4)))


class Critic(nn.Module):
    def __init__(self, resolution: int, channels: int, dim: int, norm: str):
        super().__init__()
        _, widths = _widths(resolution, dim)
        if resolution == 32:
            self.blocks = nn.Sequential(
                ResBlock(channels, dim, "down", norm, first=True),
                ResBlock(dim, dim, "down", norm), ResBlock(dim, dim, None, norm),
                ResBlock(dim, dim, None, norm), nn.ReLU())
            self.fc = nn.Linear(dim, 1)
        else:
            self.blocks = nn.Sequential(
                nn.Conv2d(channels, widths[0], 3, padding=1),
                *[ResBlock(a, b, "down", norm) for a, b in zip(widths[:-1], widths[1:])])
            self.fc = nn.Linear(4 * 4 * widths[-1], 1)
        self.resolution = resolution

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(x)
        h = h.mean(dim=(2, 3)) if self.resolution == 32 else h.flatten(1)
        return self.fc(h).flatten()


@dataclass
class WGANGPConfig(EMAOptions):
    latent_dim: int = option(128, "size of z", at_least=1)
    dim: int = option(0, "base width; 0 = the paper's (128 at 32x32, 64 at 64x64)",
                      at_least=0)
    critic_norm: str = option("layer", "critic normalisation", choices=["layer", "none"])
    n_critic: int = option(5, "critic updates per generator update", at_least=1)
    gp_weight: float = option(10.0, "gradient penalty weight lambda", at_least=0)
    lr: float = option(1e-4, "Adam learning rate", above=0)
    beta1: float = option(0.0, "Adam beta1", at_least=0, below=1)
    beta2: float = option(0.9, "Adam beta2", at_least=0, below=1)


class WGANGP(GANArchitecture):
    """WGAN-GP with ResNet generator and critic (Gulrajani et al. 2017)."""

    name = "wgan-gp"
    Config = WGANGPConfig
    resolutions = (32, 64)
    default_batch = 64
    default_kimg = 1000.0

    def discriminator_blocks(self) -> list[nn.Module]:
        """The critic's residual blocks (and the 64x64 critic's first convolution)."""
        return [m for m in self.D.blocks if any(True for _ in m.parameters())]

    def __init__(self, config: WGANGPConfig, data: DataSpec, device: torch.device):
        super().__init__(config, data, device)
        c = config
        dim = c.dim or (128 if data.resolution == 32 else 64)
        self.setup_training(Generator(c.latent_dim, data.resolution, data.channels, dim),
                            Critic(data.resolution, data.channels, dim, c.critic_norm),
                            c.lr, (c.beta1, c.beta2),
                            AdversarialSetup("wgan-gp", c.n_critic, c.gp_weight, c.latent_dim),
                            c.ema_kimg)
