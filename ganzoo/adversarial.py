"""The alternating discriminator/generator update that dcgan, cgan and wgan-gp share.

One call of :func:`adversarial_step` is one generator update preceded by ``n_critic``
discriminator updates, each on its own slice of the real batch (the trainer hands over
``n_critic`` minibatches at once, see ``Architecture.batches_per_step``).

With ``--augment`` (ganzoo/augment) every image D sees goes through the same differentiable
augmentation: reals and fakes in D's loss, fakes in G's loss, and the interpolates of
WGAN-GP's penalty, whose gradient is taken through the augmentation (as R1 is in ADA).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ganzoo import distributed
from ganzoo.acceleration import COMPILE, Acceleration, compile_module
from ganzoo.architecture import Architecture, LatentSpace, option
from ganzoo.augment.options import AugmentOptions
from ganzoo.augment.state import SmallDataState, small_data_state
from ganzoo.ema import GeneratorEMA
from ganzoo.errors import GanzooError
from ganzoo.losses import LOSSES, discriminator_loss, generator_loss, gradient_penalty

Generate = Callable[[Tensor, "Tensor | None"], Tensor]        # (z, labels) -> images
Discriminate = Callable[[Tensor, "Tensor | None"], Tensor]    # (images, labels) -> logits
ExtraDLoss = Callable[[Tensor, Tensor], "Tensor | float"]     # (real, fake logits) -> term


@dataclass(frozen=True)
class AdversarialSetup:
    loss: str = "non-saturating"
    n_critic: int = 1
    gp_weight: float = 10.0        # used by wgan-gp only
    latent_dim: int = 100


@dataclass
class EMAOptions(AugmentOptions):
    """The ``--ema-kimg`` config field of every architecture built on GANArchitecture, and
    (inherited) its augmentation and LeCam fields."""

    # Off by default: with the BatchNorm generators of dcgan, cgan and wgan-gp the average
    # sampled worse than the live G in short runs (dcgan, shapes 32x32, 20 kimg: 16% vs 29%
    # of samples confidently recognised), as its weights no longer fit the BN statistics.
    ema_kimg: float = option(0.0, "half-life of the generator's weight average in kimg "
                             "(ramped up over the first 20x that many kimg); 0 = off",
                             at_least=0)


@dataclass
class LossOptions(EMAOptions):
    """Config fields of every architecture with a ``--loss`` choice (inherit from this)."""

    loss: str = option("non-saturating", "GAN loss", choices=list(LOSSES))
    n_critic: int = option(0, "D updates per G update; 0 = 5 for wgan-gp, else 1", at_least=0)
    gp_weight: float = option(10.0, "gradient penalty weight lambda (wgan-gp)", at_least=0)

    def adversarial_setup(self, latent_dim: int) -> AdversarialSetup:
        n_critic = self.n_critic or (5 if self.loss == "wgan-gp" else 1)
        return AdversarialSetup(self.loss, n_critic, self.gp_weight, latent_dim)


def adversarial_step(generate: Generate, discriminate: Discriminate,
                     opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                     reals: Tensor, labels: Tensor | None,
                     setup: AdversarialSetup,
                     extra_d_loss: ExtraDLoss | None = None,
                     penalty_discriminate: Discriminate | None = None) -> dict[str, float]:
    """``discriminate`` is what every loss term calls (augmenting, when on);
    ``extra_d_loss(real_logits, fake_logits)`` is added to each D loss (LeCam);
    ``penalty_discriminate`` (default: ``discriminate``) is what WGAN-GP's penalty
    differentiates twice (an eager D where ``discriminate`` is compiled)."""
    penalty_discriminate = penalty_discriminate or discriminate
    real_chunks = reals.chunk(setup.n_critic)
    label_chunks = labels.chunk(setup.n_critic) if labels is not None else \
        [None] * len(real_chunks)
    stats: dict[str, float] = {}
    for i, (real, label) in enumerate(zip(real_chunks, label_chunks)):
        z = torch.randn(real.shape[0], setup.latent_dim, device=real.device)
        last = i == len(real_chunks) - 1
        # The last critic iteration's fakes keep their graph and serve the generator update
        # (a fresh sample for G, one forward pass saved), as the DCGAN reference loop does.
        with torch.set_grad_enabled(last):
            fakes = generate(z, label)
        real_logits = discriminate(real, label)
        fake_logits = discriminate(fakes.detach(), label)
        loss_d = discriminator_loss(setup.loss, real_logits, fake_logits)
        if setup.loss == "wgan-gp":
            penalty = gradient_penalty(lambda x: penalty_discriminate(x, label), real, fakes)
            stats["gp"] = penalty.item()
            stats["wdist"] = (real_logits.mean() - fake_logits.mean()).item()
            loss_d = loss_d + setup.gp_weight * penalty
        if extra_d_loss is not None:
            loss_d = loss_d + extra_d_loss(real_logits, fake_logits)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

    loss_g = generator_loss(setup.loss, discriminate(fakes, label))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    stats.update(loss_d=loss_d.item(), loss_g=loss_g.item(),
                 d_real=real_logits.mean().item(), d_fake=fake_logits.mean().item())
    return stats


class GANArchitecture(Architecture):
    """An architecture made of a generator ``G`` and a discriminator ``D`` with one Adam
    optimiser each, trained by :func:`adversarial_step`, and an optional weight average of G
    (:class:`GeneratorEMA`) that :meth:`generate` samples from. Subclasses build the networks
    and call :meth:`setup_training`; conditional ones override :meth:`g_forward` and
    :meth:`d_forward` to take labels."""

    G: nn.Module
    D: nn.Module
    accelerations = frozenset({COMPILE})

    def setup_training(self, G: nn.Module, D: nn.Module, lr: float, betas: tuple[float, float],
                       setup: AdversarialSetup, ema_kimg: float = 0.0) -> None:
        self.G, self.D = G.to(self.device), D.to(self.device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=betas)
        self.setup = setup
        self.ema = GeneratorEMA(self.G, ema_kimg) if ema_kimg > 0 else None
        self.images_seen = 0   # what the EMA ramp-up counts
        # None unless --augment or --lecam: a plain run draws no extra random numbers.
        self.small_data: SmallDataState | None = small_data_state(self.config, setup.loss,
                                                                  self.device)
        # --compile: compiled wrappers of (G, D) that train_step runs instead of the modules.
        self.compiled: tuple[Callable, Callable] | None = None

    def accelerate(self, acceleration: Acceleration) -> None:
        if not acceleration.compile:
            return
        if "D" not in inspect.signature(self.d_forward).parameters:
            raise GanzooError(f"--compile: {type(self).__name__}.d_forward(images, labels) "
                              f"must also take the module to run, as d_forward(images, "
                              f"labels, D=None)")
        self.compiled = compile_module(self.G), compile_module(self.D)

    @property
    def batches_per_step(self) -> int:
        return self.setup.n_critic

    def g_forward(self, z: Tensor, labels: Tensor | None, G: nn.Module | None = None) -> Tensor:
        return (self.G if G is None else G)(z)

    def d_forward(self, images: Tensor, labels: Tensor | None, D: Callable | None = None
                  ) -> Tensor:
        return (self.D if D is None else D)(images)

    @torch.no_grad()
    def discriminator_score(self, images: Tensor, labels: Tensor | None) -> Tensor:
        was_training = self.D.training
        self.D.eval()      # running BatchNorm statistics: each score independent of the batch
        try:
            return self.d_forward(images.to(self.device), labels).flatten()
        finally:
            self.D.train(was_training)

    def discriminator_blocks(self) -> list[nn.Module]:
        """D's convolution blocks from the image side (D.net, a Sequential, as dcgan and cgan
        build it); architectures shaped otherwise override this."""
        from ganzoo.transfer import sequential_blocks
        net = getattr(self.D, "net", None)
        return sequential_blocks(net) if isinstance(net, nn.Sequential) else []

    def d_augmented(self, images: Tensor, labels: Tensor | None, D: Callable | None = None
                    ) -> Tensor:
        """D of augmented images: what training's every loss term sees. (``D`` is passed on
        only when given: a plugin's d_forward may predate that argument.)"""
        images = self.small_data.augment(images)
        return self.d_forward(images, labels) if D is None else \
            self.d_forward(images, labels, D)

    def train_step(self, reals: Tensor, labels: Tensor | None) -> dict[str, float]:
        extra = self.small_data
        d_forward = self.d_forward if extra is None else self.d_augmented
        generate, discriminate = self.g_forward, d_forward
        if self.compiled is not None:
            G, D = self.compiled
            generate = lambda z, y: self.g_forward(z, y, G)       # noqa: E731
            discriminate = lambda x, y: d_forward(x, y, D)        # noqa: E731
        stats = adversarial_step(generate, discriminate,
                                 self.opt_g, self.opt_d, reals, labels, self.setup,
                                 None if extra is None else extra.d_loss,
                                 penalty_discriminate=d_forward)
        n = reals.shape[0] * distributed.world_size()   # images of the global minibatch
        self.images_seen += n
        if self.ema is not None:
            self.ema.update(self.G, n, self.images_seen)
        if extra is not None:
            stats.update(extra.end_step(n))
        return stats

    @property
    def sampling_generator(self) -> nn.Module:
        return self.ema.model if self.ema is not None else self.G

    @torch.no_grad()
    def generate(self, n: int, *, seed: int | None = None, labels: Tensor | None = None,
                 **options) -> Tensor:
        G = self.sampling_generator
        was_training = G.training
        G.eval()   # running BatchNorm statistics: each image independent of the batch
        try:
            z = self.seeded_normal(n, self.setup.latent_dim, seed)
            if labels is not None:
                labels = labels.to(self.device).expand(n) if labels.numel() == 1 else \
                    labels.to(self.device)
            return self.g_forward(z, labels, G)
        finally:
            G.train(was_training)

    # -- latent exploration: z itself is the working space (one layer, no truncation) -----

    def latent_space(self) -> LatentSpace:
        dim = self.setup.latent_dim
        return LatentSpace(space="z", dim=dim, z_dim=dim)

    def map_latents(self, z: Tensor, labels: Tensor | None,
                    truncation_psi: float = 1.0) -> Tensor:
        return z.to(self.device)[:, None, :]

    def render_latents(self, latents: Tensor, labels: Tensor | None, *,
                       noise_mode: str = "const", noise: dict[str, Tensor] | None = None
                       ) -> Tensor:
        G = self.sampling_generator
        was_training = G.training
        G.eval()   # as generate(): running BatchNorm statistics, the same image per latent
        try:
            with torch.set_grad_enabled(latents.requires_grad):
                labels = None if labels is None else labels.to(self.device)
                return self.g_forward(latents[:, 0], labels, G)
        finally:
            G.train(was_training)

    def state_dict(self) -> dict:
        state = {"G": self.G.state_dict(), "D": self.D.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                 "images_seen": self.images_seen}
        if self.ema is not None:
            state["G_ema"] = self.ema.model.state_dict()
        if self.small_data is not None:
            state["small_data"] = self.small_data.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.images_seen = int(state.get("images_seen", 0))
        if self.ema is not None:
            # A checkpoint written without an average starts one from its generator.
            self.ema.model.load_state_dict(state.get("G_ema", state["G"]))
        if self.small_data is not None and "small_data" in state:
            self.small_data.load_state_dict(state["small_data"])
