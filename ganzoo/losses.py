"""GAN losses any plugin may use, as functions of discriminator logits.

``--loss`` names: non-saturating (Goodfellow et al.'s -log D(G(z)) form), wgan-gp (Wasserstein
critic with gradient penalty, Gulrajani et al.), hinge (Lim & Ye; Miyato et al.), lsgan
(least squares, Mao et al., a-b-c = 0-1-1).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES = ("non-saturating", "wgan-gp", "hinge", "lsgan")


def discriminator_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    """The discriminator's (critic's) loss to minimise, from logits of reals and fakes.
    For wgan-gp this excludes the gradient penalty (see :func:`gradient_penalty`)."""
    if kind == "non-saturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "lsgan":
        return 0.5 * ((real - 1).square().mean() + fake.square().mean())
    raise ValueError(f"unknown loss {kind!r}; choose from {', '.join(LOSSES)}")


def generator_loss(kind: str, fake: Tensor) -> Tensor:
    """The generator's loss to minimise, from the discriminator's logits of its fakes."""
    if kind == "non-saturating":
        return F.softplus(-fake).mean()
    if kind in ("wgan-gp", "hinge"):
        return -fake.mean()
    if kind == "lsgan":
        return 0.5 * (fake - 1).square().mean()
    raise ValueError(f"unknown loss {kind!r}; choose from {', '.join(LOSSES)}")


def gradient_penalty(critic: Callable[[Tensor], Tensor], reals: Tensor, fakes: Tensor,
                     epsilon: Tensor | None = None) -> Tensor:
    """Mean of (||grad_x critic(x_hat)||_2 - 1)^2 over random interpolates
    x_hat = eps * real + (1 - eps) * fake, with eps ~ U[0, 1] per sample (Algorithm 1 of
    Gulrajani et al.; not N(0, 1)). Differentiable w.r.t. the critic's parameters."""
    if epsilon is None:
        epsilon = torch.rand(reals.shape[0], *([1] * (reals.dim() - 1)), device=reals.device)
    x_hat = (epsilon * reals.detach() + (1 - epsilon) * fakes.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()
