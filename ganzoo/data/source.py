"""What a data source hands the trainer: images as uint8 arrays, labels and class names."""
from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np


@dataclass
class ImageSet:
    """A prepared data set held in memory.

    images: uint8 [N, C, H, W]; labels: int64 [N] or None; class_names: one per label value.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray | None = None
    class_names: tuple[str, ...] = ()

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} "
                             f"{self.images.shape}")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError("labels and images differ in length")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, start: int, stop: int | None = None) -> "ImageSet":
        """Images ``start`` to ``stop`` (exclusive; None: to the end), with their labels."""
        return ImageSet(self.name, self.images[start:stop],
                        None if self.labels is None else self.labels[start:stop],
                        self.class_names)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])


@dataclass(frozen=True)
class PrepareOptions:
    """How a source should prepare its images."""

    resolution: int
    channels: int = 3          # 3 = RGB, 1 = L
    max_images: int | None = None
    seed: int = 0              # for procedural sources
    resize_filter: str = "lanczos"   # "lanczos" or "box"


class DatasetSource(abc.ABC):
    """A named data set that ``--data NAME`` resolves to (registered by plugins)."""

    #: The name users type; one ending in "/" handles every spec with that prefix.
    name: str
    description: str = ""

    def fetch(self, spec: str) -> None:
        """Download (and verify) whatever :meth:`load` needs for ``spec``; sources that
        need no download keep this no-op. ``ganzoo data fetch SPEC`` calls it."""

    @abc.abstractmethod
    def load(self, spec: str, options: PrepareOptions) -> ImageSet:
        """Return the prepared images for ``spec`` (the full string the user typed)."""
