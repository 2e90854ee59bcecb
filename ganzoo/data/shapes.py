"""`shapes`: an embedded procedural data set of coloured shapes, one class per shape kind.

Deterministic by seed, any resolution, no download. Each image is one filled shape with a
random position, scale, rotation, colour and a contrasting plain background. Shapes are drawn
at several times the target size and box-filtered down, so edges are anti-aliased.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

from ganzoo.data.source import ImageSet

SHAPE_KINDS = ("circle", "square", "triangle", "star", "ring")
DEFAULT_COUNT = 5000


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple]:
    if kind == "square":
        radii, n = [r] * 4, 4
    elif kind == "triangle":
        radii, n = [r] * 3, 3
    elif kind == "star":
        radii, n = [r if i % 2 == 0 else 0.45 * r for i in range(10)], 10
    else:
        raise ValueError(kind)
    return [(cx + rad * math.cos(angle + 2 * math.pi * i / n),
             cy + rad * math.sin(angle + 2 * math.pi * i / n)) for i, rad in enumerate(radii)]


def _colours(rng: np.random.Generator) -> tuple[tuple, tuple]:
    """A saturated shape colour and a background that differs clearly in hue and value."""
    h = rng.random()
    fg = colorsys.hsv_to_rgb(h, rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0))
    bg_h = (h + rng.uniform(0.25, 0.75)) % 1.0
    bg = colorsys.hsv_to_rgb(bg_h, rng.uniform(0.0, 0.5), rng.uniform(0.1, 0.45))
    return tuple(int(255 * c) for c in fg), tuple(int(255 * c) for c in bg)


def render_shape(kind: str, resolution: int, rng: np.random.Generator) -> Image.Image:
    supersample = 4 if resolution <= 64 else 2
    size = resolution * supersample
    fg, bg = _colours(rng)
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    r = size * rng.uniform(0.28, 0.40)
    cx, cy = (size / 2 + size * rng.uniform(-0.1, 0.1) for _ in range(2))
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
        inner = r * 0.55
        draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=bg)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, angle), fill=fg)
    return img.resize((resolution, resolution), Image.Resampling.BOX)


def make_shapes(count: int, resolution: int, seed: int = 0, channels: int = 3) -> ImageSet:
    """``count`` images, classes balanced and interleaved (image i has class i mod 5)."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, channels, resolution, resolution), np.uint8)
    labels = np.arange(count, dtype=np.int64) % len(SHAPE_KINDS)
    for i, label in enumerate(labels):
        img = render_shape(SHAPE_KINDS[label], resolution, rng)
        if channels == 1:
            img = img.convert("L")
        arr = np.asarray(img)
        images[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return ImageSet("shapes", images, labels, SHAPE_KINDS)
