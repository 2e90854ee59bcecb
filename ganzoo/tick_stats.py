"""The values train_step logs, summed over a tick and averaged for its stats line.

A value may be a float or a detached 0-d tensor. Tensors are summed where they live (on a GPU)
and brought to the host every ``read_every`` steps and before every tick line and snapshot:
one wait for the GPU instead of one per value per step. A non-finite value makes its sum
non-finite, so the check still catches it, naming the steps it happened in.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

# (key, value, first step it may come from, last step) -> the exception to raise
NonFinite = Callable[[str, float, int, int], Exception]


class TickStats:
    def __init__(self, read_every: int, non_finite: NonFinite):
        self.read_every = read_every
        self.non_finite = non_finite
        self.sums: dict[str, float] = {}
        self.steps = 0
        self._pending: dict[str, torch.Tensor] = {}   # device sums of tensor values, unread
        self._pending_from = 0                         # the first step they cover
        self._step = 0

    def add(self, stats: dict, step: int) -> bool:
        """One step's values; True when this step read the pending ones (a live line can be
        drawn without a wait)."""
        self._step = step
        for k, v in stats.items():
            if isinstance(v, torch.Tensor):
                if not self._pending:
                    self._pending_from = step
                self._pending[k] = self._pending.get(k, 0) + v.detach().float()
            else:
                self._add(k, float(v), step)
        self.steps += 1
        if step % self.read_every == 0:
            self.read()
            return True
        return False

    def read(self) -> None:
        """Bring the pending tensor sums to the host."""
        if not self._pending:
            return
        keys = list(self._pending)
        values = torch.stack([torch.as_tensor(self._pending[k]) for k in keys]).tolist()
        self._pending = {}
        for k, v in zip(keys, values):
            self._add(k, v, self._pending_from)

    def means(self) -> dict[str, float]:
        return {k: v / max(1, self.steps) for k, v in self.sums.items()}

    def reset(self) -> None:
        """Start a new tick (pending values have been read)."""
        self.sums, self.steps = {}, 0

    def _add(self, key: str, value: float, since: int) -> None:
        if not math.isfinite(value):
            raise self.non_finite(key, value, since, self._step)
        self.sums[key] = self.sums.get(key, 0.0) + value
