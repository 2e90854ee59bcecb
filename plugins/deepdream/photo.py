"""A procedural, photo-like landscape (sky, sun, clouds, mountains, lake, trees, grain), for
tests, benchmarks and the README: no download and no licence question."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def smooth_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 5) -> np.ndarray:
    """Fractal value noise in [0, 1]: coarse random grids upscaled and summed."""
    total = np.zeros((h, w), np.float32)
    for k in range(octaves):
        cells = 2 ** (k + 2)
        grid = rng.random((cells, cells)).astype(np.float32)
        layer = Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC)
        total += np.asarray(layer) / 2 ** k
    total -= total.min()
    return total / max(float(total.max()), 1e-6)


def ridge(rng: np.random.Generator, w: int, base: float, height: float) -> np.ndarray:
    """A mountain skyline: y of the ridge for each x, in pixels from the top."""
    x = np.linspace(0, 1, w)
    y = np.zeros(w)
    for k in range(1, 7):
        y += rng.uniform(0.4, 1.0) / k * np.sin(2 * np.pi * (k * x + rng.random()) * 1.3)
    return base - height * (y - y.min()) / max(np.ptp(y), 1e-6)


def make_photo(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    h, w = height, width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Sky: deep blue at the top to a pale haze at the horizon, with a warm sun and clouds.
    t = (yy / (0.6 * h)).clip(0, 1)[..., None]
    img = (1 - t) * np.array([40, 90, 170]) + t * np.array([215, 225, 235])
    sun_x, sun_y, sun_r = 0.72 * w, 0.2 * h, 0.05 * min(h, w)
    d = np.hypot(xx - sun_x, yy - sun_y)[..., None]
    img += np.array([255, 200, 120]) * np.exp(-(d / (4 * sun_r)) ** 2) * 0.6
    img = np.where(d < sun_r, np.array([255, 245, 210]), img)
    clouds = smooth_noise(rng, h, w)[..., None]
    img = img + (clouds > 0.55) * (clouds - 0.55) * 2.2 * (255 - img) * (yy < 0.5 * h)[..., None]
    # Two mountain ranges, the far one hazier.
    for base, rise, colour in ((0.55, 0.3, (110, 120, 150)), (0.62, 0.22, (60, 85, 70))):
        sky = yy < ridge(rng, w, base * h, rise * h)[None, :]
        rock = smooth_noise(rng, h, w)[..., None] * 50 - 25
        img = np.where(sky[..., None], img, np.array(colour) + rock)
    # Meadow and a lake that mirrors the sky.
    ground = yy > 0.66 * h
    grass = np.array([70, 120, 45]) + (smooth_noise(rng, h, w, 7)[..., None] - 0.5) * 80
    img = np.where(ground[..., None], grass, img)
    lake = ground & (((xx - 0.35 * w) / (0.25 * w)) ** 2 + ((yy - 0.8 * h) / (0.08 * h)) ** 2 < 1)
    mirror = img[np.clip((2 * 0.66 * h - yy).astype(int), 0, h - 1), xx.astype(int)]
    img = np.where(lake[..., None], 0.6 * mirror + np.array([10, 30, 60]), img)
    photo = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    draw_trees(ImageDraw.Draw(photo), rng, w, h)
    photo = photo.filter(ImageFilter.GaussianBlur(0.6))
    grain = rng.normal(0, 4, (h, w, 3))
    return Image.fromarray((np.asarray(photo) + grain).clip(0, 255).astype(np.uint8))


def draw_trees(draw: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int) -> None:
    """Conifers on the right of the meadow, nearer ones larger."""
    for _ in range(14):
        x = rng.uniform(0.6, 0.98) * w
        y = rng.uniform(0.68, 0.95) * h
        size = (y / h - 0.6) * 0.35 * h
        draw.rectangle([x - size * 0.04, y - size * 0.2, x + size * 0.04, y], fill=(70, 45, 30))
        green = tuple(int(c) for c in rng.integers([20, 60, 25], [40, 95, 45]))
        for k in range(3):
            top = y - size * (1.0 - 0.22 * k)
            half = size * (0.18 + 0.08 * k)
            draw.polygon([(x, top), (x - half, top + size * 0.45), (x + half, top + size * 0.45)],
                         fill=green)
