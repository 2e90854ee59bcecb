"""``ganzoo truncation``: one row per seed, one column per psi.

Truncation pulls a seed's w towards the generator's mean w: w' = w_avg + psi (w - w_avg).
psi 1 is plain generation, 0 the mean image (the same for every seed), and negative psi
the "anti-face" on the other side of the mean.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from PIL import Image

from ganzoo.architecture import Architecture
from ganzoo.errors import GanzooError
from ganzoo.explore.latents import class_labels, render, require_space, seed_latents
from ganzoo.viz import grid_image

MAX_PSI = 10.0     # |psi| beyond this is taken for a typo (psi 100 is noise)


@dataclass(frozen=True)
class TruncationOptions:
    seeds: Sequence[int]
    psis: Sequence[float] = (-1.0, -0.5, 0.0, 0.5, 0.7, 1.0)
    class_index: int | None = None


@dataclass
class TruncationSweep:
    images: torch.Tensor            # len(seeds) x len(psis) images, row by row
    psis: list[float]

    def image(self) -> Image.Image:
        return grid_image(self.images, len(self.psis),
                          col_titles=[f"{p:g}" for p in self.psis])


def parse_psis(text: str) -> list[float]:
    try:
        psis = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise GanzooError(f"--psi {text!r}: expected numbers like -1,-0.5,0,0.5,0.7,1")
    if not psis or any(not abs(p) <= MAX_PSI for p in psis):
        raise GanzooError(f"--psi {text!r}: give one or more values in [-{MAX_PSI:g}, "
                          f"{MAX_PSI:g}]")
    return psis


def truncation_sweep(model: Architecture, options: TruncationOptions) -> TruncationSweep:
    require_space(model, "truncation", truncation=True)
    if not options.seeds or not options.psis:
        raise GanzooError("truncation: give at least one seed and one psi")
    labels = class_labels(model, options.class_index)
    columns = [render(model, seed_latents(model, options.seeds, labels, psi), labels)
               for psi in options.psis]
    # seeds x psis, row by row
    images = torch.stack(columns, dim=1).flatten(0, 1)
    return TruncationSweep(images, list(options.psis))
