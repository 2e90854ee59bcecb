"""An exponential moving average of the generator's weights (Karras et al.): samples from the
average are smoother and better than those of the live generator, above all in short runs.

The averaging horizon is given as a half-life in images (``ema_kimg``) so it does not depend
on the batch size, and it ramps up with training (half-life at most ``rampup`` x images seen),
so an early average is not dragged down by the random initial weights.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class GeneratorEMA:
    def __init__(self, G: nn.Module, ema_kimg: float, rampup: float | None = 0.05):
        self.model = copy.deepcopy(G).eval().requires_grad_(False)
        self.ema_kimg = ema_kimg
        self.rampup = rampup

    def beta(self, batch: int, images_seen: int) -> float:
        half_life = self.ema_kimg * 1000
        if self.rampup is not None:
            half_life = min(half_life, images_seen * self.rampup)
        return 0.5 ** (batch / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, G: nn.Module, batch: int, images_seen: int) -> None:
        beta = self.beta(batch, images_seen)
        # One multi-tensor kernel per list instead of a launch per tensor (a GPU step of a
        # style-based G has ~100 parameters).
        params_ema, params = list(self.model.parameters()), list(G.parameters())
        if params:
            torch._foreach_lerp_(params_ema, params, 1 - beta)
        # Buffers (BatchNorm running statistics) are copied, not averaged, as in StyleGAN2.
        buffers_ema, buffers = list(self.model.buffers()), list(G.buffers())
        if buffers:
            torch._foreach_copy_(buffers_ema, buffers)
