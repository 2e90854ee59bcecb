"""``ganzoo video``: a looping video through the seeds' latents, one interpolation per cell
of an R x C grid.

``interpolate`` goes from keyframe to keyframe, easing nowhere (spherical in z, linear in
W); ``walk`` passes through the same keyframes on a closed Catmull-Rom spline, so the motion
does not stop at each seed. Either way frame ``i * frames_per_seed`` of a cell is its i-th
seed's image, exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from ganzoo.architecture import Architecture, LatentSpace
from ganzoo.errors import GanzooError
from ganzoo.explore.encode import check_video_path, write_video
from ganzoo.explore.latents import (class_labels, interpolate, render, require_space,
                                    seed_latents)
from ganzoo.progress import ProgressBar
from ganzoo.viz import grid_image

KINDS = ("interpolate", "walk")
MAX_FRAMES = 100_000          # more is taken for a typo (an hour at 30 fps is 108,000)


@dataclass(frozen=True)
class VideoOptions:
    seeds: Sequence[int]
    kind: str = "interpolate"
    frames_per_seed: int = 30
    grid: tuple[int, int] = (1, 1)           # rows, columns
    class_index: int | None = None           # conditional models; None: class 0
    truncation_psi: float = 1.0
    fps: float = 30.0

    @property
    def cells(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def keyframes(self) -> int:
        """Seeds per cell: the seeds are dealt to the cells in order, row by row."""
        return len(self.seeds) // self.cells

    @property
    def frame_count(self) -> int:
        return self.keyframes * self.frames_per_seed


@dataclass(frozen=True)
class VideoResult:
    path: Path
    frames: int
    width: int
    height: int
    fps: float


def check_options(options: VideoOptions) -> None:
    rows, cols = options.grid
    if options.kind not in KINDS:
        raise GanzooError(f"--kind {options.kind}: expected one of {', '.join(KINDS)}")
    if rows < 1 or cols < 1:
        raise GanzooError(f"--grid {rows}x{cols}: rows and columns must be >= 1")
    if options.frames_per_seed < 1:
        raise GanzooError(f"--frames-per-seed must be >= 1, got {options.frames_per_seed}")
    if not 0 < options.fps <= 240:
        raise GanzooError(f"--fps must be in (0, 240], got {options.fps:g}")
    if not options.seeds or len(options.seeds) % options.cells:
        raise GanzooError(f"--seeds: {len(options.seeds)} seed(s) do not fill a {rows}x{cols} "
                          f"grid evenly; give a multiple of {options.cells} (one or more "
                          "keyframes per cell)")
    if options.frame_count > MAX_FRAMES:
        raise GanzooError(f"{options.frame_count} frames; at most {MAX_FRAMES:,} per video")


def catmull_rom(p0: Tensor, p1: Tensor, p2: Tensor, p3: Tensor, t: float) -> Tensor:
    """The uniform Catmull-Rom spline between p1 (t = 0) and p2 (t = 1)."""
    return 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                  + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3)


def walk_point(space: LatentSpace, keys: Tensor, i: int, t: float) -> Tensor:
    """A point on the closed spline through ``keys`` [K, layers, dim]; in z its norm follows
    the keyframes' norms, so the walk stays on the Gaussian shell instead of cutting
    through it."""
    k = len(keys)
    if t == 0:
        return keys[i].clone()
    p = catmull_rom(keys[(i - 1) % k], keys[i], keys[(i + 1) % k], keys[(i + 2) % k], t)
    if space.style_based:
        return p
    norm = torch.lerp(keys[i].norm(dim=-1, keepdim=True),
                      keys[(i + 1) % k].norm(dim=-1, keepdim=True), t)
    return p / p.norm(dim=-1, keepdim=True) * norm


def latent_path(space: LatentSpace, keys: Tensor, frames_per_seed: int,
                kind: str) -> Iterator[Tensor]:
    """The latents of one cell's frames: ``frames_per_seed`` per keyframe, looping back to
    the first (which is not repeated at the end)."""
    k = len(keys)
    for i in range(k):
        for f in range(frames_per_seed):
            t = f / frames_per_seed
            if kind == "walk":
                yield walk_point(space, keys, i, t)
            else:
                yield interpolate(space, keys[i], keys[(i + 1) % k], t)


def video_frames(model: Architecture, options: VideoOptions) -> Iterator[np.ndarray]:
    """The frames, HWC uint8, as the grid of cells (one rendered image per cell)."""
    check_options(options)
    space = require_space(model, "video", truncation=options.truncation_psi != 1)
    labels = class_labels(model, options.class_index)
    keys = seed_latents(model, options.seeds, labels, options.truncation_psi)
    keys = keys.reshape(options.cells, options.keyframes, *keys.shape[1:])
    paths = [latent_path(space, cell, options.frames_per_seed, options.kind) for cell in keys]
    for _ in range(options.frame_count):
        latents = torch.stack([next(p) for p in paths])
        images = render(model, latents, labels)
        yield np.asarray(grid_image(images, options.grid[1]))


def make_video(model: Architecture, options: VideoOptions, out: Path,
               progress: bool = True) -> VideoResult:
    """Render and write the video to ``out`` (.mp4, .gif or .webp)."""
    check_options(options)
    check_video_path(out)
    require_space(model, "video", truncation=options.truncation_psi != 1)
    size = model.data.resolution
    with ProgressBar("video", options.frame_count) as bar:
        def counted():
            for frame in video_frames(model, options):
                yield frame
                if progress:
                    bar.advance()
        count = write_video(counted(), out, options.fps)
    return VideoResult(out, count, size * options.grid[1], size * options.grid[0],
                       options.fps)
