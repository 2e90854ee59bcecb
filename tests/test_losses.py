"""Losses and the gradient penalty against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch

from ganzoo.losses import LOSSES, discriminator_loss, generator_loss, gradient_penalty


def test_gradient_penalty_of_a_linear_critic_is_known_exactly():
    # f(x) = <w, x> + b has gradient w everywhere: the penalty is (||w|| - 1)^2, whatever
    # the interpolation.
    w = torch.zeros(3, 4, 4)
    w[0, 0, 0], w[1, 2, 3] = 2.0, -math.sqrt(5.0)          # ||w|| = 3
    critic = lambda x: (x * w).flatten(1).sum(1) + 0.5     # noqa: E731
    reals, fakes = torch.randn(8, 3, 4, 4), torch.randn(8, 3, 4, 4)
    assert gradient_penalty(critic, reals, fakes).item() == pytest.approx(4.0)


def test_gradient_penalty_uses_the_interpolate():
    # f(x) = ||x||^2 / 2 has gradient x: at x_hat = eps r + (1 - eps) f the norm is ||x_hat||.
    critic = lambda x: 0.5 * x.flatten(1).square().sum(1)   # noqa: E731
    reals, fakes = torch.full((2, 1, 1, 2), 3.0), torch.zeros(2, 1, 1, 2)
    eps = torch.tensor([0.5, 1.0]).view(2, 1, 1, 1)
    norms = torch.tensor([1.5 * math.sqrt(2), 3 * math.sqrt(2)])
    expected = ((norms - 1) ** 2).mean().item()
    assert gradient_penalty(critic, reals, fakes, eps).item() == pytest.approx(expected)


def test_gradient_penalty_draws_eps_uniform_in_0_1():
    torch.manual_seed(0)
    critic = lambda x: 0.5 * x.flatten(1).square().sum(1)   # noqa: E731
    reals, fakes = torch.ones(4096, 1), torch.zeros(4096, 1)
    # grad = x_hat = eps: the penalty is E[(eps - 1)^2] = 1/3 for eps ~ U[0, 1]
    assert gradient_penalty(critic, reals, fakes).item() == pytest.approx(1 / 3, abs=0.02)


def test_gradient_penalty_reaches_critic_parameters():
    critic = torch.nn.Linear(4, 1)
    gradient_penalty(lambda x: critic(x).flatten(), torch.randn(5, 4), torch.randn(5, 4)).backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind,real,fake,d,g", [
    ("non-saturating", 0.0, 0.0, 2 * math.log(2), math.log(2)),
    ("wgan-gp", 2.0, -1.0, -3.0, 1.0),
    ("hinge", 0.5, -0.5, 1.0, 0.5),
    ("hinge", 2.0, -2.0, 0.0, 2.0),
    ("lsgan", 1.0, 0.0, 0.0, 0.5),
])
def test_loss_values(kind, real, fake, d, g):
    r, f = torch.tensor([real]), torch.tensor([fake])
    assert discriminator_loss(kind, r, f).item() == pytest.approx(d)
    assert generator_loss(kind, f).item() == pytest.approx(g)


def test_unknown_loss():
    assert len(LOSSES) == 4
    with pytest.raises(ValueError, match="unknown loss"):
        discriminator_loss("wasserstein", torch.zeros(1), torch.zeros(1))
