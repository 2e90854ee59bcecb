"""DCGAN: strided convolutions, BatchNorm, ReLU in G, LeakyReLU(0.2) in D, tanh output.

Layout follows Radford et al. and the thesis' tables 3.2/3.3 (../shared/seeds/000_*.txt):
G maps z [N, latent, 1, 1] through a 4x4 transposed convolution, then doubles the resolution
with 4x4 stride-2 transposed convolutions; D mirrors it with stride-2 convolutions down to 4x4
and a final 4x4 convolution to one logit. Widths double as resolution halves, capped at
``max_channels``. No BatchNorm on G's output or D's input; weights N(0, 0.02).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo import Architecture, DataSpec, option


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


class Discriminator(nn.Module):
    def __init__(self, resolution: int, channels: int, base: int, cap: int):
        super().__init__()
        ch = lambda s: channels_at(s, resolution, base, cap)  # noqa: E731
        size = resolution // 2
        layers: list[nn.Module] = [nn.Conv2d(channels, ch(size), 4, 2, 1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        while size > 4:
            layers += [nn.Conv2d(ch(size), ch(size // 2), 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ch(size // 2)), nn.LeakyReLU(0.2, inplace=True)]
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
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@dataclass
class DCGANConfig:
    latent_dim: int = option(100, "size of z (the seeds used 100 and 128)")
    base_channels: int = option(64, "channels of the layers next to full resolution")
    max_channels: int = option(512, "cap on channels at low resolution")
    lr: float = option(2e-4, "Adam learning rate (G and D)")
    beta1: float = option(0.5, "Adam beta1")
    beta2: float = option(0.999, "Adam beta2")


class DCGAN(Architecture):
    """Deep convolutional GAN with the non-saturating logistic loss."""

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
        self.G = Generator(c.latent_dim, data.resolution, data.channels, c.base_channels,
                           c.max_channels).to(self.device)
        self.D = Discriminator(data.resolution, data.channels, c.base_channels,
                               c.max_channels).to(self.device)
        self.G.apply(init_weights)
        self.D.apply(init_weights)
        betas = (c.beta1, c.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=c.lr, betas=betas)

    def train_step(self, reals: Tensor, labels: Tensor | None) -> dict[str, float]:
        z = torch.randn(reals.shape[0], self.config.latent_dim, device=self.device)
        fakes = self.G(z)

        logits_real, logits_fake = self.D(reals), self.D(fakes.detach())
        # -log sigmoid(x) = softplus(-x): the logistic loss without saturating exp/log.
        loss_d = F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        loss_g = F.softplus(-self.D(fakes)).mean()   # non-saturating generator loss
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
                "d_real": torch.sigmoid(logits_real).mean().item(),
                "d_fake": torch.sigmoid(logits_fake).mean().item()}

    @torch.no_grad()
    def generate(self, n: int, *, seed: int | None = None, labels: Tensor | None = None,
                 **options) -> Tensor:
        was_training = self.G.training
        self.G.eval()   # running BatchNorm statistics: each image independent of the batch
        try:
            return self.G(self.seeded_normal(n, self.config.latent_dim, seed))
        finally:
            self.G.train(was_training)

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
