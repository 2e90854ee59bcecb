"""`bin-objects`: an embedded procedural set like the thesis' picking-bin photos.

A grey plastic bin seen from straight above (top rim, four walls in perspective, a shaded
floor) holding 1-6 objects of one kind, as the thesis grouped its data by product. Kinds:
box (cardboard or coloured, taped, its sides visible in perspective), bottle (lying, with
neck and cap), can (upright: silver lid over a coloured side), tube (flat, crimped end, cap)
and ball (shaded sphere). Objects cast soft shadows away from a light whose direction, the
bin's grey, its position in the frame and the camera offset vary per image.

Labels: ``bin-objects`` labels each image with the kind of its objects (5 classes);
``bin-objects/count`` with the number of objects (classes "1".."6"). Image i holds kind
i mod 5 and (i // 5) mod 6 + 1 objects, so both labelings are balanced and every
(kind, count) pair is equally common. Image i depends only on (seed, i): deterministic by
seed, the same for any count, at any resolution; no download.
"""
from __future__ import annotations

import colorsys
import math
import multiprocessing
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ganzoo.data.source import ImageSet

KINDS = ("box", "bottle", "can", "tube", "ball")
MAX_OBJECTS = 6
DEFAULT_COUNT = 5000
LABEL_MODES = ("kind", "count")

Point = tuple[float, float]


def kind_of(index: np.ndarray) -> np.ndarray:
    return np.asarray(index) % len(KINDS)


def count_of(index: np.ndarray) -> np.ndarray:
    return np.asarray(index) // len(KINDS) % MAX_OBJECTS + 1


def labels_for(count: int, mode: str) -> tuple[np.ndarray, tuple[str, ...]]:
    index = np.arange(count, dtype=np.int64)
    if mode == "kind":
        return kind_of(index), KINDS
    if mode == "count":
        return count_of(index) - 1, tuple(str(n) for n in range(1, MAX_OBJECTS + 1))
    raise ValueError(f"label mode {mode!r}: expected one of {LABEL_MODES}")


# -- the bin -------------------------------------------------------------------------------------

@dataclass
class Bin:
    """Where the bin lies in a square canvas of ``size`` px, and how it is lit."""

    size: int
    outer: tuple[float, float, float, float]   # rim, outside edge
    inner: tuple[float, float, float, float]   # rim, inside edge (top of the walls)
    floor: tuple[float, float, float, float]   # bottom of the walls
    grey: np.ndarray                           # RGB of the plastic
    light: Point                               # unit vector the light comes from

    @classmethod
    def random(cls, size: int, rng: np.random.Generator) -> "Bin":
        s = size
        x0, y0 = (s * rng.uniform(0.02, 0.08) for _ in range(2))
        x1, y1 = (s * (1 - rng.uniform(0.02, 0.08)) for _ in range(2))
        rim = s * rng.uniform(0.025, 0.04)
        inner = (x0 + rim, y0 + rim, x1 - rim, y1 - rim)
        depth = s * rng.uniform(0.08, 0.13)
        # The camera is not quite over the centre: the floor shifts, walls differ in width.
        ox, oy = (s * rng.uniform(-0.035, 0.035) for _ in range(2))
        floor = (inner[0] + depth + ox, inner[1] + depth + oy,
                 inner[2] - depth + ox, inner[3] - depth + oy)
        grey = rng.uniform(105, 165) + rng.uniform(-6, 6, 3)   # a slightly tinted grey
        angle = rng.uniform(-0.6, 0.6) - 3 * math.pi / 4       # from the upper left, mostly
        return cls(s, (x0, y0, x1, y1), inner, floor, grey, (math.cos(angle), math.sin(angle)))

    def walls(self) -> list[tuple[list[Point], Point]]:
        """The four wall quads, each with its normal (pointing into the bin)."""
        (a0, b0, a1, b1), (f0, g0, f1, g1) = self.inner, self.floor
        return [([(a0, b0), (a1, b0), (f1, g0), (f0, g0)], (0.0, 1.0)),    # top wall
                ([(a0, b1), (a1, b1), (f1, g1), (f0, g1)], (0.0, -1.0)),   # bottom wall
                ([(a0, b0), (a0, b1), (f0, g1), (f0, g0)], (1.0, 0.0)),    # left wall
                ([(a1, b0), (a1, b1), (f1, g1), (f1, g0)], (-1.0, 0.0))]   # right wall

    def render(self, rng: np.random.Generator) -> np.ndarray:
        """The empty bin as float RGB [H, W, 3] in 0..255."""
        s = self.size
        regions = Image.new("L", (s, s), 0)          # 0 outside, 1 rim, 2-5 walls, 6 floor
        draw = ImageDraw.Draw(regions)
        draw.rectangle(self.outer, fill=1)
        for k, (quad, _) in enumerate(self.walls()):
            draw.polygon(quad, fill=2 + k)
        draw.rectangle(self.floor, fill=6)
        region = np.asarray(regions)
        lx, ly = self.light
        brightness = np.zeros(7)
        brightness[1] = 1.18                                    # the rim faces the camera
        for k, (_, (nx, ny)) in enumerate(self.walls()):
            brightness[2 + k] = 0.9 + 0.3 * -(nx * lx + ny * ly)   # walls facing the light
        # Floor: brighter on the side away from the light, darker in the creases.
        xs = np.arange(s) / s - 0.5
        gradient = 0.95 * (1 - 0.18 * (xs[None, :] * lx + xs[:, None] * ly))
        floor = region == 6
        crease = Image.fromarray((floor * 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(s * 0.03))
        occlusion = 0.72 + 0.28 * np.asarray(crease, np.float64) / 255
        factor = np.where(floor, gradient * occlusion, brightness[region])
        img = factor[..., None] * self.grey
        surround = rng.uniform(35, 75) + rng.uniform(-5, 5, 3)
        img[region == 0] = surround
        return img


# -- objects -------------------------------------------------------------------------------------

# An object is a list of parts: (polygon in object coordinates, RGB, height). Object
# coordinates: u along the object, v across, in units of its size; height lifts a part toward
# the camera, which shifts it away from the image centre (perspective).
Part = tuple[list[Point], tuple[int, int, int], float]


def _ellipse(cu: float, cv: float, ru: float, rv: float, n: int = 24) -> list[Point]:
    return [(cu + ru * math.cos(t), cv + rv * math.sin(t))
            for t in np.linspace(0, 2 * math.pi, n, endpoint=False)]


def _rect(u0: float, v0: float, u1: float, v1: float) -> list[Point]:
    return [(u0, v0), (u1, v0), (u1, v1), (u0, v1)]


def _scale(rgb, f: float) -> tuple[int, int, int]:
    return tuple(int(min(255.0, max(0.0, c * f))) for c in rgb)


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    return tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _cylinder_strips(u0: float, u1: float, half: float, rgb, light_v: float,
                     height: float, n: int = 7) -> list[Part]:
    """A cylinder lying along u: strips across v, brightest where it faces the light."""
    parts = []
    edges = np.linspace(-half, half, n + 1)
    for a, b in zip(edges[:-1], edges[1:]):
        v = (a + b) / (2 * half)                        # -1..1 across the cylinder
        normal_v = v
        normal_up = math.sqrt(max(0.0, 1 - v * v))
        f = 0.45 + 0.55 * max(0.0, 0.6 * normal_up + 0.6 * normal_v * light_v) + 0.1
        parts.append((_rect(u0, a, u1, b), _scale(rgb, f), height))
    return parts


def _box(rng, light_v) -> list[Part]:
    cardboard = rng.random() < 0.6
    rgb = _hsv(rng.uniform(0.06, 0.1), rng.uniform(0.35, 0.6), rng.uniform(0.55, 0.8)) \
        if cardboard else _hsv(rng.random(), rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.9))
    lu, lv = rng.uniform(0.75, 1.0), rng.uniform(0.45, 0.7)
    top = _rect(-lu, -lv, lu, lv)
    sides = [(top, _scale(rgb, 0.55), h) for h in (0.0, 0.25, 0.5, 0.75)]
    tape = _rect(-lu, -0.12 * lv, lu, 0.12 * lv)
    tape_rgb = (205, 190, 150) if cardboard else (235, 235, 235)
    return sides + [(top, rgb, 1.0), (tape, tape_rgb, 1.0)]


def _can(rng, light_v) -> list[Part]:
    side = _hsv(rng.random(), rng.uniform(0.5, 0.95), rng.uniform(0.45, 0.9))
    metal = rng.uniform(160, 205)
    r = rng.uniform(0.48, 0.58)
    parts = [(_ellipse(0, 0, r, r), side, h) for h in (0.0, 0.3, 0.6, 0.9)]
    parts += [(_ellipse(0, 0, r, r), (int(metal * 0.8),) * 3, 1.2),
              (_ellipse(0, 0, 0.82 * r, 0.82 * r), (int(metal),) * 3, 1.2),
              (_ellipse(0.25 * r, 0, 0.28 * r, 0.16 * r, 12), (int(metal * 0.6),) * 3, 1.2)]
    return parts


def _bottle(rng, light_v) -> list[Part]:
    """A PET or glass bottle lying on its side: clear, green or brown, a label, a cap."""
    hue, sat, val = [(0.58, 0.12, 0.9), (0.33, 0.55, 0.6), (0.08, 0.7, 0.45)][rng.integers(3)]
    body = _hsv(hue + rng.uniform(-0.03, 0.03), sat, val * rng.uniform(0.9, 1.1))
    cap = _hsv(rng.random(), rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0))
    half = rng.uniform(0.3, 0.38)
    parts = _cylinder_strips(-1.0, 0.45, half, body, light_v, 0.5)
    parts.append((_ellipse(-1.0, 0, 0.12, half), _scale(body, 0.8), 0.5))
    parts.append(([(0.45, -half), (0.72, -0.12), (0.72, 0.12), (0.45, half)],
                  _scale(body, 0.85), 0.5))                                   # shoulder
    parts += _cylinder_strips(0.72, 0.88, 0.12, body, light_v, 0.5, n=3)       # neck
    parts += _cylinder_strips(0.88, 1.05, 0.15, cap, light_v, 0.5, n=3)        # cap
    label = _hsv(rng.random(), rng.uniform(0.0, 0.8), rng.uniform(0.7, 1.0))
    parts += _cylinder_strips(-0.65, -0.05, half, label, light_v, 0.5, n=5)
    return parts


def _tube(rng, light_v) -> list[Part]:
    """A flat squeeze tube: light body widening to a crimped end, a coloured band, a cap."""
    body = _hsv(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.85, 1.0))
    band = _hsv(rng.random(), rng.uniform(0.7, 1.0), rng.uniform(0.5, 0.9))
    w0, w1 = rng.uniform(0.18, 0.24), rng.uniform(0.36, 0.44)

    def across(u: float) -> float:   # half-width at u: the tube widens toward the crimp
        return w0 + (w1 - w0) * (u + 0.8) / 1.75
    outline = [(-0.8, -w0), (0.95, -w1), (0.95, w1), (-0.8, w0)]
    parts: list[Part] = [(outline, _scale(body, 0.75), 0.0), (outline, body, 0.3)]
    parts.append(([(-0.1, -across(-0.1)), (0.45, -across(0.45)), (0.45, across(0.45)),
                   (-0.1, across(-0.1))], band, 0.3))
    parts.append((_rect(0.85, -w1, 0.95, w1), _scale(body, 0.7), 0.3))          # crimp
    cap = (30, 30, 30) if rng.random() < 0.5 else band
    parts += _cylinder_strips(-1.05, -0.8, 0.15, cap, light_v, 0.3, n=3)
    return parts


def _ball(rng, light_v) -> list[Part]:
    rgb = _hsv(rng.random(), rng.uniform(0.6, 1.0), rng.uniform(0.6, 0.95))
    r = rng.uniform(0.45, 0.6)
    parts: list[Part] = []
    for k in range(8):   # concentric discs, brighter and shifted toward the light
        t = k / 8
        parts.append((_ellipse(-0.35 * r * t, light_v * 0.35 * r * t, r * (1 - 0.85 * t),
                               r * (1 - 0.85 * t)), _scale(rgb, 0.55 + 0.75 * t), 0.5))
    return parts


MAKERS = {"box": _box, "bottle": _bottle, "can": _can, "tube": _tube, "ball": _ball}
SIZES = {"box": 0.13, "bottle": 0.14, "can": 0.1, "tube": 0.13, "ball": 0.085}   # x canvas


@dataclass
class Placed:
    parts: list[Part]
    centre: Point
    angle: float
    size: float


def _place(kind: str, count: int, scene: Bin, rng: np.random.Generator) -> list[Placed]:
    """Objects on the floor, not overlapping where random tries allow it (in a real bin they
    sometimes do)."""
    f0, g0, f1, g1 = scene.floor
    placed: list[Placed] = []
    for _ in range(count):
        size = scene.size * SIZES[kind] * rng.uniform(0.9, 1.1)
        margin = 0.7 * size   # long objects may lean on a wall
        for _attempt in range(30):
            c = (rng.uniform(f0 + margin, f1 - margin), rng.uniform(g0 + margin, g1 - margin))
            if all(math.dist(c, p.centre) > 1.5 * max(size, p.size) for p in placed):
                break
        angle = rng.uniform(0, 2 * math.pi)
        # light direction in the object's frame, across its length (for cylinder shading)
        light_v = -math.sin(angle) * scene.light[0] + math.cos(angle) * scene.light[1]
        placed.append(Placed(MAKERS[kind](rng, -light_v), c, angle, size))
    return placed


def _to_image(obj: Placed, pts: list[Point], height: float, canvas: int) -> list[Point]:
    ca, sa = math.cos(obj.angle), math.sin(obj.angle)
    cx, cy = obj.centre
    # Perspective: nearer the camera means further from the image centre.
    lift = 0.14 * obj.size * height / (canvas / 2)
    dx, dy = (cx - canvas / 2) * lift, (cy - canvas / 2) * lift
    return [(cx + obj.size * (u * ca - v * sa) + dx, cy + obj.size * (u * sa + v * ca) + dy)
            for u, v in pts]


def render_bin_image(kind: str, count: int, resolution: int,
                     rng: np.random.Generator) -> Image.Image:
    supersample = 4 if resolution <= 64 else 2 if resolution <= 256 else 1
    s = resolution * supersample
    scene = Bin.random(s, rng)
    base = scene.render(rng)
    objects = _place(kind, count, scene, rng)
    # Soft shadows: the silhouettes, shifted away from the light, blurred, darken the scene.
    shadow = Image.new("L", (s, s), 0)
    sd = ImageDraw.Draw(shadow)
    offset = 0.035 * s
    for obj in objects:
        for pts, _, height in obj.parts:
            shifted = [(x - scene.light[0] * offset * (0.5 + height),
                        y - scene.light[1] * offset * (0.5 + height))
                       for x, y in _to_image(obj, pts, 0.0, s)]
            sd.polygon(shifted, fill=255)
    shadow = shadow.filter(ImageFilter.GaussianBlur(0.015 * s))
    base *= 1 - 0.5 * np.asarray(shadow, np.float64)[..., None] / 255
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for obj in objects:
        for pts, rgb, height in obj.parts:
            draw.polygon(_to_image(obj, pts, height, s), fill=rgb)
    img = img.resize((resolution, resolution), Image.Resampling.BOX)
    # A little sensor noise, so flat areas are not perfectly flat.
    arr = np.asarray(img, np.float64) + rng.normal(0, 1.5, (resolution, resolution, 1))
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def render_one(seed: int, index: int, resolution: int, channels: int) -> np.ndarray:
    """Image ``index`` as uint8 CHW; a function of (seed, index, resolution) alone."""
    rng = np.random.default_rng([seed, index])
    img = render_bin_image(KINDS[int(kind_of(index))], int(count_of(index)), resolution, rng)
    if channels == 1:
        return np.asarray(img.convert("L"))[None]
    return np.asarray(img).transpose(2, 0, 1)


def _render_range(task: tuple[int, int, int, int, int]) -> np.ndarray:
    seed, start, stop, resolution, channels = task
    return np.stack([render_one(seed, i, resolution, channels) for i in range(start, stop)])


def make_bin_objects(count: int, resolution: int, seed: int = 0, channels: int = 3,
                     labels: str = "kind", workers: int | None = None) -> ImageSet:
    """``count`` images; ``labels`` is "kind" or "count" (see the module docstring)."""
    label_values, class_names = labels_for(count, labels)
    workers = min(workers or multiprocessing.cpu_count(), max(1, count // 64))
    step = max(1, min(256, math.ceil(count / (4 * workers))))
    tasks = [(seed, a, min(a + step, count), resolution, channels)
             for a in range(0, count, step)]
    if workers <= 1:
        chunks = [_render_range(t) for t in tasks]
    else:
        with multiprocessing.Pool(workers) as pool:
            chunks = pool.map(_render_range, tasks)
    name = "bin-objects" if labels == "kind" else "bin-objects-count"
    return ImageSet(name, np.concatenate(chunks), label_values, class_names)
