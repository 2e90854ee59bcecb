"""``ganzoo mix``: the style-mixing grid of the StyleGAN papers.

The top row shows the column seeds, the left column the row seeds (each as plain
generation draws it); cell (r, c) takes the row seed's ws at the ``styles`` layers (by
default the coarse ones, 4x4 and 8x8: pose and shape) and the column seed's everywhere else.
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

#: The ws of the 4x4 and 8x8 blocks (const conv, then 8x8's two convs and its toRGB's w,
#: which is the next block's first): the paper's "coarse" styles.
COARSE_STYLES = range(0, 4)


@dataclass(frozen=True)
class MixOptions:
    rows: Sequence[int]                       # seeds that give the ``styles`` layers
    cols: Sequence[int]                       # seeds that give the other layers
    styles: Sequence[int] | None = None       # None: COARSE_STYLES (those that exist)
    class_index: int | None = None
    truncation_psi: float = 1.0


@dataclass
class MixGrid:
    """The (1 + rows) x (1 + cols) images, NCHW in [-1, 1]: [0, 0] blank, row 0 the column
    seeds, column 0 the row seeds; and the layers that were mixed."""

    images: torch.Tensor
    columns: int
    styles: list[int]

    def image(self) -> Image.Image:
        return grid_image(self.images, self.columns)


def check_styles(styles: Sequence[int] | None, layers: int) -> list[int]:
    if styles is None:
        return [s for s in COARSE_STYLES if s < layers]
    bad = [s for s in styles if not 0 <= s < layers]
    if bad or not styles:
        raise GanzooError(f"--styles: this generator has {layers} style layers (0-"
                          f"{layers - 1}); got {', '.join(map(str, bad)) or 'none'}")
    return sorted(set(styles))


def style_mix(model: Architecture, options: MixOptions) -> MixGrid:
    space = require_space(model, "mix", mixing=True,
                          truncation=options.truncation_psi != 1)
    if not options.rows or not options.cols:
        raise GanzooError("mix: give at least one --rows seed and one --cols seed")
    styles = check_styles(options.styles, space.layers)
    labels = class_labels(model, options.class_index)
    w_rows = seed_latents(model, options.rows, labels, options.truncation_psi)
    w_cols = seed_latents(model, options.cols, labels, options.truncation_psi)
    row_images, col_images = render(model, w_rows, labels), render(model, w_cols, labels)
    blank = torch.full_like(row_images[:1], -1)
    cells = [blank, col_images]
    for r, w_row in enumerate(w_rows):
        mixed = w_cols.clone()
        mixed[:, styles] = w_row[styles]
        cells += [row_images[r:r + 1], render(model, mixed, labels)]
    return MixGrid(torch.cat(cells), 1 + len(options.cols), styles)
