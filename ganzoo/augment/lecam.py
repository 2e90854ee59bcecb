"""LeCam regularisation of the discriminator (Tseng et al. 2021, "Regularizing Generative
Adversarial Networks under Limited Data").

Exponential moving averages of D's mean output on reals and on fakes (decay 0.99) anchor
each other: the penalty is mean(relu(D(x) - ema_fake)^2) + mean(relu(ema_real - D(G(z)))^2),
times the weight, added to D's loss. It keeps D's outputs on reals and fakes from drifting
apart, which is what an overfitting D does. The averages are training state: a checkpoint
holds them, so a resumed run continues exactly.
"""
from __future__ import annotations

import torch
from torch import Tensor

DECAY = 0.99


class LeCam:
    def __init__(self, weight: float, device: torch.device, decay: float = DECAY):
        self.weight, self.decay = float(weight), float(decay)
        # Tensors on D's device: no host-device sync per step.
        self.ema_real = torch.zeros((), device=device)
        self.ema_fake = torch.zeros((), device=device)

    def update(self, real_logits: Tensor, fake_logits: Tensor) -> None:
        """Move the averages toward this minibatch's mean outputs."""
        self.ema_real = torch.lerp(self.ema_real, real_logits.detach().float().mean(),
                                   1 - self.decay)
        self.ema_fake = torch.lerp(self.ema_fake, fake_logits.detach().float().mean(),
                                   1 - self.decay)

    def penalty(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """The weighted term (its gradient reaches D through the logits only)."""
        term = torch.relu(real_logits - self.ema_fake).square().mean() + \
            torch.relu(self.ema_real - fake_logits).square().mean()
        return self.weight * term

    def state_dict(self) -> dict:
        return {"ema_real": self.ema_real.clone(), "ema_fake": self.ema_fake.clone()}

    def load_state_dict(self, state: dict) -> None:
        device = self.ema_real.device
        self.ema_real = torch.as_tensor(state["ema_real"]).to(device)
        self.ema_fake = torch.as_tensor(state["ema_fake"]).to(device)
