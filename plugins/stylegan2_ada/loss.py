"""StyleGAN2's objective: the non-saturating logistic loss, lazy R1 on D, lazy path-length
regularisation on G, and style mixing (Karras et al. 2020, "Analyzing and Improving the Image
Quality of StyleGAN", sections 2.2 and 3.2; the ADA paper for R1 through the augmentation).

One minibatch is up to four phases, each its own optimiser step: Gmain (every minibatch),
Greg (path length, every ``pl_interval``), Dmain (every minibatch) and Dreg (R1, every
``r1_interval``). A regulariser evaluated every k minibatches is multiplied by k so its
strength per image stays that of the published weight.

The penalty functions are separate from the phases so tests can check them on hand-made
networks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.distributed import all_reduce_mean

Augment = Callable[[Tensor], Tensor]
Stats = dict[str, Union[float, Tensor]]     # logged values: floats or 0-d tensors


# -- the penalties, on their own ------------------------------------------------------------------

def r1_penalty(discriminate: Callable[[Tensor], Tensor], reals: Tensor) -> tuple[Tensor, Tensor]:
    """Squared norm of D's gradient at each real image, ``||d D(x) / d x||^2`` [N], and the
    logits D(x) [N, 1]. ``discriminate`` includes the augmentation, so the gradient flows
    back through it to the un-augmented reals; the graph is kept (create_graph) so the
    penalty can itself be differentiated with respect to D's weights."""
    x = reals.detach().requires_grad_(True)
    logits = discriminate(x)
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return grad.square().sum(dim=[1, 2, 3]), logits


def path_lengths(images: Tensor, ws: Tensor, noise: Tensor | None = None) -> Tensor:
    """``||J_w^T y||`` per sample [N] for images [N, C, H, W] computed from ws
    [N, num_ws, w_dim], with y a random image [N, C, H, W] of N(0, 1) / sqrt(H * W) pixels
    (so the length does not depend on the resolution). The gradient's squared norm is
    averaged over the num_ws copies of w before the square root. Pass ``noise`` to fix y."""
    if noise is None:
        noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
    (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    return grad.square().sum(dim=2).mean(dim=1).sqrt()


def path_length_penalty(lengths: Tensor, pl_mean: Tensor, decay: float
                        ) -> tuple[Tensor, Tensor]:
    """``(length - a)^2`` per sample [N], where ``a`` is the running mean of path lengths
    moved ``decay`` of the way toward this minibatch's mean first; returns the penalty and
    the new running mean (detached, to store). Distributed, the minibatch mean is the mean
    over all ranks (so every rank keeps the same running mean) with this rank's gradient."""
    batch_mean = lengths.mean()
    batch_mean = batch_mean + (all_reduce_mean(batch_mean) - batch_mean).detach()
    mean = pl_mean.lerp(batch_mean, decay)
    return (lengths - mean).square(), mean.detach()


def mix_styles(ws: Tensor, other_ws: Callable[[], Tensor], prob: float) -> Tensor:
    """Style mixing regularisation: with probability ``prob`` (one draw per minibatch) the
    ws from a random cutoff layer on come from a second latent, ``other_ws()``.
    ws: [N, num_ws, w_dim].

    The draws stay on ws's device and decide by masks, not branches: ``other_ws()`` is mapped
    every time, so the host never waits for the GPU and the phase can be captured as a CUDA
    graph (the second mapping costs little next to the synthesis)."""
    num_ws = ws.shape[1]
    if prob <= 0 or num_ws < 2:
        return ws
    cutoff = torch.randint(1, num_ws, (), device=ws.device)
    mixing = torch.rand((), device=ws.device) < prob
    later = torch.arange(num_ws, device=ws.device) >= cutoff
    return torch.where((later & mixing)[None, :, None], other_ws(), ws)


# -- the phases -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Networks:
    """What a phase runs: G's two halves and D (modules, or their compiled wrappers)."""

    mapping: Callable[..., Tensor]
    synthesis: Callable[..., Tensor]
    D: Callable[..., Tensor]


@dataclass(frozen=True)
class LossSettings:
    gamma: float              # R1 weight
    pl_weight: float          # path-length weight; 0 = off
    style_mixing: float       # probability
    r1_interval: int
    pl_interval: int
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01


class StyleGAN2Loss:
    """The four phases on networks with the contract API (G.mapping, G.synthesis, D(img, c)).

    Each phase method returns the loss to back-propagate (already scaled by the phase's
    interval for regularisers) and the statistics to log, as detached 0-d tensors: the
    trainer reads them in batches, so no phase waits for the GPU. ``augment`` is applied to
    every image D sees. ``pl_mean`` (a scalar tensor, updated in place) is part of the
    training state.

    ``main`` runs the main phases (Gmain, Dmain) and may be compiled; the regularisers (Greg,
    Dreg) differentiate twice and always run the eager modules.
    """

    def __init__(self, G: nn.Module, D: nn.Module, settings: LossSettings,
                 augment: Augment | None = None):
        self.G, self.D, self.settings = G, D, settings
        self.augment: Augment = augment or (lambda x: x)
        self.pl_mean = torch.zeros([], device=next(G.parameters()).device)
        self.eager = Networks(G.mapping, G.synthesis, D)
        self.main = self.eager

    # -- networks --

    def run_G(self, z: Tensor, c: Tensor, update_emas: bool = False,
              nets: Networks | None = None) -> tuple[Tensor, Tensor]:
        """Images [N, C, H, W] and the (possibly mixed) ws they came from. ``update_emas``
        moves G's w average toward this pass's ws; every phase that runs G sets it (Gmain,
        Greg and Dmain's fakes, as the official loop does: 2.25 updates per minibatch with
        the path-length phase every 4th), the style-mixing latent never."""
        nets = nets or self.eager
        ws = nets.mapping(z, c, update_emas=update_emas)
        ws = mix_styles(ws, lambda: nets.mapping(torch.randn_like(z), c, update_emas=False),
                        self.settings.style_mixing)
        return nets.synthesis(ws), ws

    def run_D(self, images: Tensor, c: Tensor, nets: Networks | None = None) -> Tensor:
        return (nets or self.eager).D(self.augment(images), c)

    # -- phases --

    def generator_main(self, z: Tensor, c: Tensor) -> tuple[Tensor, Stats]:
        """Non-saturating G loss: softplus(-D(G(z)))."""
        fakes, _ = self.run_G(z, c, update_emas=True, nets=self.main)
        loss = F.softplus(-self.run_D(fakes, c, self.main)).mean()
        return loss, {"loss_g": loss.detach()}

    def generator_reg(self, z: Tensor, c: Tensor) -> tuple[Tensor, Stats]:
        """Path-length penalty on batch // pl_batch_shrink samples, times pl_interval."""
        s = self.settings
        n = max(1, z.shape[0] // s.pl_batch_shrink)
        fakes, ws = self.run_G(z[:n], c[:n], update_emas=True)
        lengths = path_lengths(fakes, ws)
        penalty, pl_mean = path_length_penalty(lengths, self.pl_mean, s.pl_decay)
        self.pl_mean.copy_(pl_mean)
        loss = penalty.mean() * s.pl_weight * s.pl_interval
        return loss, {"pl": penalty.detach().mean(), "pl_mean": self.pl_mean}

    def discriminator_main(self, reals: Tensor, c_real: Tensor, z: Tensor, c_gen: Tensor
                           ) -> tuple[Tensor, Stats, Tensor]:
        """softplus(D(G(z))) + softplus(-D(x)); also returns D's logits on the augmented
        reals [N, 1], which drive the ADA heuristic. The fakes update G's w average."""
        with torch.no_grad():
            fakes, _ = self.run_G(z, c_gen, update_emas=True, nets=self.main)
        fake_logits = self.run_D(fakes, c_gen, self.main)
        real_logits = self.run_D(reals.detach(), c_real, self.main)
        loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        stats = {"loss_d": loss.detach(), "d_real": real_logits.detach().mean(),
                 "d_fake": fake_logits.detach().mean()}
        return loss, stats, real_logits.detach()

    def discriminator_reg(self, reals: Tensor, c_real: Tensor
                          ) -> tuple[Tensor, Stats, Tensor]:
        """R1 = gamma / 2 * E||grad_x D(aug(x))||^2 on reals, times r1_interval; also returns
        D's logits on these augmented reals [N, 1]: the ADA heuristic counts them too."""
        s = self.settings
        penalty, logits = r1_penalty(lambda x: self.run_D(x, c_real), reals)
        loss = penalty.mean() * (s.gamma / 2) * s.r1_interval
        return loss, {"r1": penalty.detach().mean()}, logits.detach()
