"""`shapes`: an embedded procedural data set of shapes, one class per shape kind.

Deterministic by seed, any resolution, no download. Two styles:

- ``plain`` (`shapes`, the default): a white upright shape on black, near the centre, its size
  varying by +-9%. It is what a DCGAN learns in the 20 kimg of the first-run command on two
  CPU cores: on the ``colour`` style it drew blobs at 20 kimg and was still mixing colours
  inside shapes at 60 kimg, while on this style every class is recognisable at 20 kimg (see
  the README's design notes).
- ``colour`` (`shapes/colour`): a harder set with the same classes: random colour, contrasting
  background, rotation, scale and position.

Shapes are drawn at several times the target size and box-filtered down, so edges are
anti-aliased.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ganzoo.data.source import ImageSet

SHAPE_KINDS = ("circle", "square", "triangle", "star", "ring")
STYLES = ("plain", "colour")
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


@dataclass(frozen=True)
class Placement:
    """Where a shape goes, in pixels of the supersampled canvas, and its colours."""
    cx: float
    cy: float
    radius: float
    angle: float          # radians; 0 points the first vertex along +x
    fg: tuple
    bg: tuple


def _place(style: str, size: int, rng: np.random.Generator, kind: str) -> Placement:
    if style == "plain":
        cx, cy = (size / 2 + size * rng.uniform(-0.04, 0.04) for _ in range(2))
        # Upright: triangles and stars point up, squares sit on an edge.
        angle = -math.pi / 2 + (math.pi / 4 if kind == "square" else 0.0)
        return Placement(cx, cy, size * rng.uniform(0.32, 0.38), angle,
                         (255, 255, 255), (0, 0, 0))
    fg, bg = _colours(rng)
    r = size * rng.uniform(0.28, 0.40)
    cx, cy = (size / 2 + size * rng.uniform(-0.1, 0.1) for _ in range(2))
    return Placement(cx, cy, r, rng.uniform(0, 2 * math.pi), fg, bg)


def render_shape(kind: str, resolution: int, rng: np.random.Generator,
                 style: str = "plain") -> Image.Image:
    supersample = 4 if resolution <= 64 else 2
    size = resolution * supersample
    at = _place(style, size, rng, kind)
    img = Image.new("RGB", (size, size), at.bg)
    draw = ImageDraw.Draw(img)
    cx, cy, r = at.cx, at.cy, at.radius
    if kind in ("circle", "ring"):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=at.fg)
        if kind == "ring":
            inner = r * 0.55
            draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=at.bg)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, at.angle), fill=at.fg)
    return img.resize((resolution, resolution), Image.Resampling.BOX)


def make_shapes(count: int, resolution: int, seed: int = 0, channels: int = 3,
                style: str = "plain") -> ImageSet:
    """``count`` images, classes balanced and interleaved (image i has class i mod 5)."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, channels, resolution, resolution), np.uint8)
    labels = np.arange(count, dtype=np.int64) % len(SHAPE_KINDS)
    for i, label in enumerate(labels):
        img = render_shape(SHAPE_KINDS[label], resolution, rng, style)
        if channels == 1:
            img = img.convert("L")
        arr = np.asarray(img)
        images[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    name = "shapes" if style == "plain" else f"shapes-{style}"
    return ImageSet(name, images, labels, SHAPE_KINDS)
