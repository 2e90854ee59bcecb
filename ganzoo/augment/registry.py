"""The augmentations ``--augment-policy`` can name, and how a plugin adds one.

An augmentation is a function ``fn(images, p, generator=None) -> images``: images
[N, C, H, W] in [-1, 1], each sample transformed with probability ``p``, differentiable in
the images to second order (gradient penalties are taken through it), the identity for
p = 0, random draws from ``generator`` when one is given (else torch's global RNG, which
checkpoints save, so a resumed run draws the same). A plugin registers one at import time:

    from ganzoo.augment import register_augmentation
    register_augmentation("noise", lambda x, p, generator=None: ..., "Gaussian pixel noise")

then ``--augment-policy color,noise`` uses it. Names are unique: registering a taken name
is an error naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from ganzoo.augment import diffaugment
from ganzoo.augment.pipeline import apply_transforms, draw_transforms, make_strengths
from ganzoo.errors import GanzooError

Op = Callable[[Tensor, float, Optional[torch.Generator]], Tensor]


@dataclass(frozen=True)
class Augmentation:
    name: str
    fn: Op
    doc: str = ""


_REGISTRY: dict[str, Augmentation] = {}


def register_augmentation(name: str, fn: Op, doc: str = "") -> None:
    """Make ``name`` usable in ``--augment-policy``."""
    if not name or "," in name or name != name.strip():
        raise GanzooError(f"augmentation name {name!r}: needs a name without commas or spaces")
    if name in _REGISTRY:
        raise GanzooError(f"augmentation {name!r} is registered already")
    _REGISTRY[name] = Augmentation(name, fn, doc)


def augmentation(name: str) -> Augmentation:
    if name not in _REGISTRY:
        raise GanzooError(f"--augment-policy: unknown augmentation {name!r}; known: "
                          f"{', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def augmentation_names() -> list[str]:
    return sorted(_REGISTRY)


def parse_policy(text: str) -> tuple[str, ...]:
    """``"color,translation"`` -> ("color", "translation"), every name checked."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise GanzooError(f"--augment-policy {text!r}: name at least one augmentation "
                          f"({', '.join(sorted(_REGISTRY))})")
    for name in names:
        augmentation(name)
    return names


def ada_op(preset: str) -> Op:
    """ADA's transforms of ``preset`` (Karras et al. 2020) at probability p, as one op."""
    strengths = make_strengths(preset)

    def op(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
        n, _, h, w = x.shape
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        draw = draw_transforms(n, h, w, p, strengths, dtype=dtype, device=x.device,
                               generator=generator)
        return apply_transforms(x, draw)
    return op


for _name, _fn, _doc in [
        ("color", diffaugment.color, "DiffAugment: brightness, saturation, contrast"),
        ("translation", diffaugment.translation, "DiffAugment: shifts up to 1/8, zero fill"),
        ("cutout", diffaugment.cutout, "DiffAugment: a zeroed square of half the size"),
        ("bgc", ada_op("bgc"), "ADA: blit, general geometric and colour transforms"),
        ("blit", ada_op("blit"), "ADA: x-flip, quarter turns, integer translation"),
        ("geom", ada_op("geom"), "ADA: scale, rotation, anisotropic scale, fractional shift")]:
    register_augmentation(_name, _fn, _doc)
