"""``ganzoo data expand RUN``: a trained model's images as a new data set, filtered.

The thesis behind issue 9 retrained on its 10 images plus generated ones and found only up to
4% of its generated images usable, by eye. Here the filter is two numbers:

* near-copies go: a sample whose nearest training image lies closer than ``min_nn_distance``
  (root-mean-square pixel difference, intensities in [0, 1], measured on the 8-bit image that
  is written). The default is the memorisation threshold of ``ganzoo eval --metrics nn``
  (:func:`ganzoo.metrics.measures.memorisation_rate`): half the median distance between a
  training image and its nearest other training image.
* with ``min_d_score``, samples the run's discriminator scores below it go (its logit; higher
  is "more real").

Images are written as PNGs to ``out`` (one folder per class for conditional models, so the
folder loads with its labels); ``--data REAL+OUT`` then trains on the union.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganzoo.architecture import Architecture
from ganzoo.data.source import ImageSet
from ganzoo.errors import GanzooError
from ganzoo.metrics.extract import quantise
from ganzoo.metrics.measures import (MEMORISATION_FACTOR, kth_neighbour_distance,
                                     pairwise_distances)

BATCH = 64


@dataclass
class ExpandOptions:
    count: int
    out: Path
    min_nn_distance: float | None = None    # None: the memorisation threshold
    min_d_score: float | None = None        # None: no discriminator filter
    seed: int = 0


@dataclass
class ExpandReport:
    generated: int
    kept: int
    near_copies: int
    low_score: int
    threshold: float
    out: Path

    def line(self) -> str:
        return (f"kept {self.kept} of {self.generated} generated images "
                f"({self.near_copies} near-copies closer than {self.threshold:.4f} to a "
                f"training image, {self.low_score} below the D score) -> {self.out}")


def flat_unit(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float64 rows in [0, 1], scaled so Euclidean distance is the RMS
    per-value difference."""
    x = torch.as_tensor(np.asarray(images)).double().flatten(1) / 255.0
    return x / x.shape[1] ** 0.5


def memorisation_threshold(train: np.ndarray) -> float:
    """The `nn` metric's memorisation threshold over the training images, in these units."""
    if len(train) < 2:
        raise GanzooError("data expand needs at least 2 training images to set "
                          "--min-nn-distance; give it explicitly")
    typical = float(kth_neighbour_distance(flat_unit(train), 1).median())
    return MEMORISATION_FACTOR * typical


def nearest_training_distance(samples: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    return pairwise_distances(samples, train).min(dim=1).values


def expand(model: Architecture, train: ImageSet, options: ExpandOptions) -> ExpandReport:
    if options.count < 1:
        raise GanzooError(f"--count must be >= 1, got {options.count}")
    if options.min_d_score is not None and \
            type(model).discriminator_score is Architecture.discriminator_score:
        raise GanzooError(f"--min-d-score: {model.name} has no discriminator to score with")
    threshold = options.min_nn_distance if options.min_nn_distance is not None \
        else memorisation_threshold(train.images)
    train_rows = flat_unit(train.images)
    classes = train.class_names if model.conditional else ()
    options.out.mkdir(parents=True, exist_ok=True)
    kept = near = low = 0
    for start in range(0, options.count, BATCH):
        n = min(BATCH, options.count - start)
        labels = (torch.arange(start, start + n) % len(classes)) if classes else None
        images = model.generate(n, seed=options.seed * 2 ** 20 + start // BATCH, labels=labels)
        pixels = quantise(images)                   # what the PNG will hold
        keep = nearest_training_distance(flat_unit(pixels), train_rows) >= threshold
        near += int((~keep).sum())
        if options.min_d_score is not None:
            scores = model.discriminator_score(pixels.float() / 127.5 - 1, labels).cpu()
            good = scores >= options.min_d_score
            low += int((keep & ~good).sum())
            keep &= good
        for i in torch.nonzero(keep).flatten().tolist():
            folder = options.out / classes[int(labels[i])] if classes else options.out
            folder.mkdir(exist_ok=True)
            save_png(pixels[i], folder / f"gen{options.seed:04d}-{start + i:06d}.png")
            kept += 1
    return ExpandReport(options.count, kept, near, low, threshold, options.out)


def training_data(train: dict, registry) -> ImageSet:
    """The images a run trained on, prepared as it prepared them (from its saved options)."""
    from ganzoo.data import PrepareOptions, resolve_data
    return resolve_data(train["data"], PrepareOptions(
        train["resolution"], train["channels"], train.get("max_images"),
        resize_filter=train.get("resize_filter", "lanczos")), registry)


def save_png(image: torch.Tensor, path: Path) -> None:
    array = image.permute(1, 2, 0).numpy()
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)
