"""The DeepDream algorithm: gradient ascent on the mean activation of a layer, computed tile by
tile with a randomly shifted tile grid, over octaves from small to full size.

As the seed (../shared/seeds/003_*.txt, section 6.2) describes it:

- The objective is the mean activation of one layer (or of chosen channels of it); its gradient
  with respect to the image is normalised by its standard deviation and added ``step_size``
  (in 0-255 pixel units) at a time, ``iterations`` times per octave. Before the step the
  gradient is smoothed (Gaussians that widen over an octave's steps, as the tutorial the seed
  follows does), so patterns come out at the layer's scale rather than as pixel noise.
- Tiles bound memory by ``tile_size`` whatever the photo's size. Each step shifts the tile grid
  by a random offset (a "roll" of the grid rather than of the pixels, so the picture's opposite
  edges never meet inside a tile), so tile borders never sit in one place long enough to show.
- Octaves: the photo is downscaled ``octaves`` times by ``rescale``; the dream starts on the
  smallest. What it added there (its detail: result minus that octave's photo) is upscaled
  and added to the next larger photo, weighted ``1 - blend``: the seed's blend of
  ``blend`` x photo + (1 - blend) x dream, except that the dream's share keeps the photo's
  full-size sharpness instead of an upscaled, blurred copy of it (as Mordvintsev's original
  code carries "detail" up). Large patterns form in the small octaves, fine ones later.
- ``color=False`` keeps the photo's colours: the result's luminance on the photo's chroma.

Images are NCHW float in [-1, 1], ganzoo's convention; every image of a batch is normalised on
its own, so a batch dreams as its images would one by one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ganzoo.errors import GanzooError
from ganzoo.features import FeatureExtractor

#: Octaves stop shrinking here: deep layers of InceptionV1 need at least 15 px.
MIN_OCTAVE_SIDE = 32
#: Tiles smaller than this share of ``tile_size`` (at the picture's edges) join their
#: neighbour, so no network ever sees a sliver.
MIN_TILE_SHARE = 0.5

Objective = Callable[[Tensor], Tensor]             # images in [-1, 1] -> scalar to maximise
OnStep = Callable[[int, int, Tensor], None]       # (octave, iteration, images) after each step


@dataclass(frozen=True)
class DreamParams:
    """The seed's parameters (section 6.2.4), with their CLI names."""

    layer: str
    channels: tuple[int, ...] = ()   # empty: every channel of the layer
    iterations: int = 10             # num_iterations: gradient steps per octave
    step_size: float = 3.0           # pixel units (0-255) per step
    octaves: int = 4                 # num_repeats: times the photo is downscaled
    rescale: float = 0.7             # rescale_factor: size ratio between octaves
    blend: float = 0.2               # share of the photo when a dream moves up an octave
    tile_size: int = 512             # tile side in pixels
    color: bool = True               # let the dream change the photo's colours

    def __post_init__(self):
        checks = [(self.iterations >= 0, f"--iterations must be >= 0, got {self.iterations}"),
                  (self.step_size > 0, f"--step-size must be > 0, got {self.step_size:g}"),
                  (self.octaves >= 0, f"--octaves must be >= 0, got {self.octaves}"),
                  (0 < self.rescale < 1, f"--rescale must be in (0, 1), got {self.rescale:g}"),
                  (0 <= self.blend <= 1, f"--blend must be in [0, 1], got {self.blend:g}"),
                  (self.tile_size >= MIN_OCTAVE_SIDE,
                   f"--tile-size must be >= {MIN_OCTAVE_SIDE}, got {self.tile_size}"),
                  (all(c >= 0 for c in self.channels), "--channels must be >= 0")]
        for ok, message in checks:
            if not ok:
                raise GanzooError(message)


def layer_objective(backbone: FeatureExtractor, layer: str,
                    channels: Sequence[int] = ()) -> Objective:
    """The mean activation of ``layer`` (of the given channels only, if any)."""
    backbone.check_layers([layer])
    picked = list(channels)

    def activations(images: Tensor) -> Tensor:
        if backbone.input_channels == 1:         # a greyscale network dreams on luminance
            images = images.mean(dim=1, keepdim=True)
        return backbone.activations(images, [layer])[layer]

    if picked:      # check the channels now, on a small probe, not after minutes of dreaming
        device = next(backbone.parameters()).device
        with torch.no_grad():
            available = activations(torch.zeros(1, 3, 64, 64, device=device)).shape[1]
        if max(picked) >= available:
            raise GanzooError(f"--channels {max(picked)}: layer {layer} of {backbone.name} "
                              f"has channels 0-{available - 1}")

    def objective(images: Tensor) -> Tensor:
        act = activations(images)
        return (act[:, picked] if picked else act).mean()
    return objective


# -- the tiled gradient -------------------------------------------------------------------------

def tile_spans(length: int, tile: int, offset: int) -> list[tuple[int, int]]:
    """[start, end) spans covering ``range(length)`` with a grid of ``tile``-sized cells that
    starts ``offset`` pixels before 0. Edge slivers join their neighbour."""
    if tile >= length:
        return [(0, length)]
    bounds = sorted({0, length, *range(tile - offset % tile, length, tile)})
    spans = list(zip(bounds[:-1], bounds[1:]))
    min_len = int(tile * MIN_TILE_SHARE)
    if len(spans) > 1 and spans[0][1] - spans[0][0] < min_len:
        spans[:2] = [(spans[0][0], spans[1][1])]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < min_len:
        spans[-2:] = [(spans[-2][0], spans[-1][1])]
    return spans


def tiled_gradient(images: Tensor, objective: Objective, tile: int,
                   offset: tuple[int, int] = (0, 0)) -> Tensor:
    """Gradient of the objective w.r.t. ``images``, one tile at a time (memory bounded by the
    tile). Each tile's objective is weighted by its share of the picture's area, so that tiles
    of different sizes contribute in proportion; with one tile covering the picture this is
    exactly the whole-picture gradient."""
    h, w = images.shape[-2:]
    grad = torch.zeros_like(images)
    for y0, y1 in tile_spans(h, tile, offset[0]):
        for x0, x1 in tile_spans(w, tile, offset[1]):
            crop = images[..., y0:y1, x0:x1].detach().requires_grad_(True)
            score = objective(crop) * ((y1 - y0) * (x1 - x0) / (h * w))
            grad[..., y0:y1, x0:x1] = torch.autograd.grad(score, crop)[0]
    return grad


def normalise(grad: Tensor) -> Tensor:
    """Each image's gradient divided by its standard deviation: a step then changes pixels by
    about ``step_size`` whatever the layer's scale."""
    std = grad.flatten(1).std(dim=1).clamp_min(1e-8)
    return grad / std.view(-1, *[1] * (grad.dim() - 1))


def smooth_gradient(grad: Tensor, progress: float) -> Tensor:
    """The gradient blurred at three scales around a sigma that grows from 0.5 to 4.5 px over
    an octave's steps (as the seed's tutorial does): raw gradients of a network are
    pixel-level noise; smoothing turns them into patterns of the layer's own scale.

    One FFT applies the three Gaussians at once: a direct convolution with a 55-tap kernel
    needed 15 s or 8 GB per step on a 12-megapixel photo. Reflected borders keep the FFT's
    wrap-around from mixing opposite edges."""
    sigma = 0.5 + 4.0 * progress
    h, w = grad.shape[-2:]
    pad = min(int(6 * sigma + 0.5), h - 1, w - 1)
    padded = F.pad(grad, (pad, pad, pad, pad), mode="reflect")
    size = padded.shape[-2:]
    fy = torch.fft.fftfreq(size[0], device=grad.device).view(-1, 1)
    fx = torch.fft.rfftfreq(size[1], device=grad.device).view(1, -1)
    freq2 = fy ** 2 + fx ** 2
    transfer = sum(torch.exp(-2 * (math.pi * s) ** 2 * freq2) for s in (sigma, 2 * sigma,
                                                                        sigma / 2))
    spectrum = torch.fft.rfft2(padded)
    del padded
    spectrum *= transfer
    return torch.fft.irfft2(spectrum, s=size)[..., pad:pad + h, pad:pad + w]


def ascend(images: Tensor, objective: Objective, params: DreamParams, gen: torch.Generator,
           on_step: Callable[[int, Tensor], None] | None = None) -> Tensor:
    """``params.iterations`` normalised gradient steps, each on a freshly shifted tile grid."""
    step = params.step_size / 127.5          # pixel units -> [-1, 1] units
    images = images.clone()   # then updated in place: big photos hold few picture-sized copies
    for i in range(params.iterations):
        offset = tuple(int(torch.randint(0, params.tile_size, (1,), generator=gen))
                       for _ in range(2))
        grad = tiled_gradient(images, objective, params.tile_size, offset)
        grad = smooth_gradient(grad, i / params.iterations)
        images.add_(normalise(grad), alpha=step).clamp_(-1, 1)
        if on_step is not None:
            on_step(i, images)
    return images


# -- octaves and colour -------------------------------------------------------------------------

def resize(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear, antialiased when shrinking (the seed blurs before downscaling for the same
    reason: no aliasing in the small octaves)."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False,
                         antialias=True)


def octave_sizes(h: int, w: int, octaves: int, rescale: float) -> list[tuple[int, int]]:
    """Picture sizes from the full size down, ``octaves`` times smaller by ``rescale``, never
    below MIN_OCTAVE_SIDE on the short side."""
    sizes = [(h, w)]
    for k in range(1, octaves + 1):
        size = (round(h * rescale ** k), round(w * rescale ** k))
        if min(size) < MIN_OCTAVE_SIDE:
            break
        sizes.append(size)
    return sizes


def keep_colours(result: Tensor, original: Tensor) -> Tensor:
    """The result's luminance on the original's chroma (YCbCr, BT.601)."""
    if result.shape[1] != 3:
        return result
    y_new = luminance(result)
    y_old = luminance(original)
    return (original + (y_new - y_old)).clamp(-1, 1)


def luminance(images: Tensor) -> Tensor:
    weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def dream(images: Tensor, objective: Objective, params: DreamParams, seed: int = 0,
          on_step: OnStep | None = None) -> Tensor:
    """DeepDream of ``images`` (NCHW in [-1, 1]); the same seed gives the same result."""
    h, w = images.shape[-2:]
    if min(h, w) < MIN_OCTAVE_SIDE:
        raise GanzooError(f"the picture is {w}x{h}; DeepDream needs at least "
                          f"{MIN_OCTAVE_SIDE} px on each side")
    gen = torch.Generator().manual_seed(int(seed))
    originals = images.detach()
    pyramid = [originals]
    for size in octave_sizes(h, w, params.octaves, params.rescale)[1:]:
        pyramid.append(resize(pyramid[-1], size))
    result, previous = None, None
    for octave, photo in enumerate(reversed(pyramid)):      # smallest first
        base = photo
        if result is not None:
            detail = resize(result - previous, photo.shape[-2:])
            base = photo + (1 - params.blend) * detail
        previous = photo
        step_hook = None if on_step is None else (
            lambda i, x, o=octave: on_step(o, i, x))
        result = ascend(base, objective, params, gen, step_hook)
    if not params.color:
        result = keep_colours(result, originals)
    return result.detach()
