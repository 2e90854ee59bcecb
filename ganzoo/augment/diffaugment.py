"""DiffAugment's policies (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient
GAN Training"), written from the paper's description:

* ``color``: brightness (add a uniform value in [-0.5, 0.5]), saturation (scale each pixel's
  deviation from its channel mean by a uniform factor in [0, 2]), contrast (scale the
  deviation from the image mean by a uniform factor in [0.5, 1.5]), in that order;
* ``translation``: shift by a whole number of pixels, up to 1/8 of the image size on each
  axis, the uncovered part filled with zeros;
* ``cutout``: zero one square of half the image size at a random place (its centre anywhere
  in the image, so it may be clipped by the border).

Every op draws its parameters per sample and is applied to each sample with probability
``p`` (the paper applies them always: p = 1). Images are in [-1, 1], so zero is mid-grey.
Each op is built from arithmetic, ``gather`` and masks: differentiable to any order, which a
gradient penalty taken through the augmentation needs. A sample that does not draw the op is
passed through bit-exact (a select, not an identity transform with round-off).
"""
from __future__ import annotations

import torch
from torch import Tensor

BRIGHTNESS = 0.5                 # +- range of the added value
SATURATION = (0.0, 2.0)          # range of the chroma factor
CONTRAST = (0.5, 1.5)            # range of the contrast factor
TRANSLATION = 1 / 8              # largest shift, as a share of the image size
CUTOUT = 1 / 2                   # side of the cut square, as a share of the image size


def _where(x: Tensor, gen: torch.Generator | None) -> torch.device:
    """Where random numbers are drawn: the generator's device, else the images'."""
    return gen.device if gen is not None else x.device


def _uniform(n: int, lo: float, hi: float, like: Tensor, gen: torch.Generator | None) -> Tensor:
    """[N, 1, 1, 1] uniform in [lo, hi]."""
    u = torch.rand(n, 1, 1, 1, generator=gen, device=_where(like, gen),
                   dtype=torch.float64 if like.dtype == torch.float64 else torch.float32)
    return (lo + (hi - lo) * u).to(like.device, like.dtype)


def _gate(x: Tensor, out: Tensor, p: float, gen: torch.Generator | None) -> Tensor:
    """``out`` for the samples that draw the op (probability p), ``x`` for the others."""
    if p >= 1:
        return out
    on = torch.rand(x.shape[0], generator=gen, device=_where(x, gen)) < p
    return torch.where(on.to(x.device)[:, None, None, None], out, x)


def color(x: Tensor, p: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """Brightness, saturation and contrast, each drawn independently per sample."""
    n, gen = x.shape[0], generator
    out = x + _uniform(n, -BRIGHTNESS, BRIGHTNESS, x, gen)
    mean = out.mean(dim=1, keepdim=True)
    out = (out - mean) * _uniform(n, *SATURATION, x, gen) + mean
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * _uniform(n, *CONTRAST, x, gen) + mean
    return _gate(x, out, p, gen)


def _shifts(x: Tensor, size: int, gen: torch.Generator | None) -> Tensor:
    """[N] integer shifts in [-size/8, size/8]."""
    most = int(size * TRANSLATION + 0.5)
    return torch.randint(-most, most + 1, (x.shape[0],), generator=gen,
                         device=_where(x, gen)).to(x.device)


def translate(x: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    """x [N, C, H, W] moved by whole pixels dx, dy [N] (right, down), zeros where the image
    moved away from."""
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :] - dy[:, None]     # [N, H] source rows
    cols = torch.arange(w, device=x.device)[None, :] - dx[:, None]     # [N, W] source cols
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    flat = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]
    moved = x.reshape(n, c, h * w).gather(2, flat.reshape(n, 1, -1).expand(n, c, -1))
    return moved.reshape(n, c, h, w) * inside[:, None].to(x.dtype)


def translation(x: Tensor, p: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    _, _, h, w = x.shape
    dx, dy = _shifts(x, w, generator), _shifts(x, h, generator)
    return _gate(x, translate(x, dx, dy), p, generator)


def cutout_mask(n: int, h: int, w: int, cy: Tensor, cx: Tensor, like: Tensor) -> Tensor:
    """[N, 1, H, W]: 0 inside the square of side H/2 x W/2 centred on pixel (cy, cx), else 1."""
    sh, sw = int(h * CUTOUT + 0.5), int(w * CUTOUT + 0.5)
    rows = torch.arange(h, device=like.device)[None, :] - (cy[:, None] - sh // 2)
    cols = torch.arange(w, device=like.device)[None, :] - (cx[:, None] - sw // 2)
    cut = ((rows >= 0) & (rows < sh))[:, :, None] & ((cols >= 0) & (cols < sw))[:, None, :]
    return (~cut)[:, None].to(like.dtype)


def cutout(x: Tensor, p: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    n, _, h, w = x.shape
    where = _where(x, generator)
    cy = torch.randint(0, h, (n,), generator=generator, device=where).to(x.device)
    cx = torch.randint(0, w, (n,), generator=generator, device=where).to(x.device)
    return _gate(x, x * cutout_mask(n, h, w, cy, cx, x), p, generator)
