"""Adaptive augmentation probability (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data", section 3).

The overfitting heuristic is r_t = E[sign(D(x_real))] over D's outputs on (augmented) reals,
gathered over ``interval`` minibatches. Then p moves by sign(r_t - target) times a step sized
so that p could cross from 0 to 1 in ``speed_kimg`` thousand real images (paper: target 0.6,
every 4 minibatches, 500 kimg). p is clamped at 0 from below only, as in the official code:
above 1 every transform is always applied (p * multiplier >= 1), and a long run can drift a
little past 1 (the official one peaked at 1.024) and come back without a dead zone.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ganzoo.distributed import all_reduce_sum_


class AdaController:
    """Tracks r_t and adjusts p.

    Per minibatch: ``accumulate(real_logits)`` (any shape, e.g. [N, 1]), then
    ``step(batch_size)``; every ``interval``-th step updates p and returns it (else None).
    """

    def __init__(self, target: float = 0.6, interval: int = 4, speed_kimg: float = 500,
                 p: float = 0.0):
        if interval < 1 or speed_kimg <= 0:
            raise ValueError("interval must be >= 1 and speed_kimg > 0")
        self.target, self.interval = float(target), int(interval)
        self.speed_kimg = float(speed_kimg)
        self.p = max(float(p), 0.0)
        self.rt: float | None = None
        self._sign_sum: Tensor | float = 0.0  # kept on D's device: no sync per minibatch
        self._count = 0
        self._batches = 0
        self._images = 0

    def accumulate(self, real_logits: Tensor) -> None:
        """Add D's outputs on the augmented reals of one minibatch to the running r_t."""
        logits = real_logits.detach()
        self._sign_sum = self._sign_sum + torch.sign(logits).sum()
        self._count += logits.numel()

    def step(self, batch_size: int) -> float | None:
        """Count one minibatch of ``batch_size`` reals; every ``interval`` calls update p."""
        self._batches += 1
        self._images += int(batch_size)
        if self._batches < self.interval:
            return None
        # Distributed: the signs of every rank's reals (the same p on all ranks).
        sign_sum, count = all_reduce_sum_(torch.tensor(
            [float(self._sign_sum), float(self._count)], dtype=torch.float64)).tolist()
        if count > 0:
            self.rt = sign_sum / count
            # Step proportional to the images seen since the last update, so that moving p
            # by a whole unit takes speed_kimg thousand images.
            delta = math.copysign(1.0, self.rt - self.target) if self.rt != self.target else 0.0
            self.p = max(self.p + delta * self._images / (self.speed_kimg * 1000), 0.0)
        self._sign_sum, self._count, self._batches, self._images = 0.0, 0, 0, 0
        return self.p

    def state_dict(self) -> dict:
        """Everything needed to resume exactly, including a partly gathered interval."""
        return {"target": self.target, "interval": self.interval, "speed_kimg": self.speed_kimg,
                "p": self.p, "rt": self.rt, "sign_sum": float(self._sign_sum),
                "count": self._count, "batches": self._batches, "images": self._images}

    def load_state_dict(self, d: dict) -> None:
        self.target, self.interval = float(d["target"]), int(d["interval"])
        self.speed_kimg, self.p = float(d["speed_kimg"]), float(d["p"])
        self.rt = None if d.get("rt") is None else float(d["rt"])
        self._sign_sum, self._count = float(d.get("sign_sum", 0.0)), int(d.get("count", 0))
        self._batches, self._images = int(d.get("batches", 0)), int(d.get("images", 0))
