"""What a GANArchitecture's training step needs for small data: the augmentation of D's
inputs, ADA's adaptive p, LeCam's averages; and their checkpoint state."""
from __future__ import annotations

import torch
from torch import Tensor

from ganzoo.augment.ada import AdaController
from ganzoo.augment.lecam import LeCam
from ganzoo.augment.options import AugmentOptions
from ganzoo.augment.registry import augmentation, parse_policy

ADA_INTERVAL = 4      # train steps between updates of p (the paper: every 4 minibatches)


class AugmentPolicy:
    """The named augmentations in order, each at probability ``p``."""

    def __init__(self, names: tuple[str, ...], p: float = 0.0):
        self.names, self.p = names, float(p)
        self.ops = [augmentation(n).fn for n in names]

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.p <= 0:
            return images
        for op in self.ops:
            images = op(images, self.p, generator)
        return images


def ada_boundary(loss: str, fake_logits: Tensor) -> Tensor | float:
    """Where D's output separates "real" from "fake" for ADA's r_t = E[sign(D(x) - b)]:
    0 for the logistic and hinge losses (the paper's heuristic), 0.5 for LSGAN (targets 0
    and 1). A Wasserstein critic has no fixed boundary (its outputs shift freely), so r_t
    counts reals scored above this minibatch's mean fake: our choice, 1 when the critic
    separates every real from the fakes."""
    if loss == "wgan-gp":
        return fake_logits.detach().mean()
    return 0.5 if loss == "lsgan" else 0.0


class SmallDataState:
    """Built from AugmentOptions for one loss; None when neither augmentation nor LeCam is on
    (see :func:`small_data_state`), so a plain run does exactly what it did before."""

    def __init__(self, options: AugmentOptions, loss: str, device: torch.device):
        self.loss = loss
        on = options.augment != "none"
        self.policy = AugmentPolicy(parse_policy(options.policy) if on else (),
                                    options.start_p if on else 0.0)
        self.ada = AdaController(options.ada_target, ADA_INTERVAL, options.ada_kimg,
                                 options.start_p) if options.augment == "ada" else None
        self.lecam = LeCam(options.lecam, device) if options.lecam > 0 else None
        self.last_lecam = torch.zeros(())

    def augment(self, images: Tensor) -> Tensor:
        return self.policy(images)

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor | float:
        """Counts D's verdicts for ADA; LeCam's term for D's loss (0 without it)."""
        if self.ada is not None:
            self.ada.accumulate(real_logits - ada_boundary(self.loss, fake_logits))
        if self.lecam is None:
            return 0.0
        self.lecam.update(real_logits, fake_logits)
        penalty = self.lecam.penalty(real_logits, fake_logits)
        self.last_lecam = penalty.detach()
        return penalty

    def end_step(self, images: int) -> dict:
        """After a train step of ``images`` reals (all ranks): ADA may move p."""
        if self.ada is not None:
            p = self.ada.step(images)
            if p is not None:
                self.policy.p = p
        stats: dict = {"augment_p": self.policy.p}
        if self.lecam is not None:     # the last D step's weighted term (a 0-d tensor)
            stats["lecam"] = self.last_lecam
        return stats

    def state_dict(self) -> dict:
        state: dict = {"p": self.policy.p}
        if self.ada is not None:
            state["ada"] = self.ada.state_dict()
        if self.lecam is not None:
            state["lecam"] = self.lecam.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.policy.p = float(state["p"])
        if self.ada is not None and "ada" in state:
            self.ada.load_state_dict(state["ada"])
        if self.lecam is not None and "lecam" in state:
            self.lecam.load_state_dict(state["lecam"])


def small_data_state(options, loss: str, device: torch.device) -> SmallDataState | None:
    """The state a Config asks for; None for a Config without AugmentOptions, or with
    augmentation and LeCam both off."""
    if not isinstance(options, AugmentOptions):
        return None
    if options.augment == "none" and options.lecam <= 0:
        return None
    return SmallDataState(options, loss, device)
