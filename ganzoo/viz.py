"""Pictures a person looks at: image grids and the progress GIF."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from ganzoo.atomic import atomic_write


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """NCHW float in [-1, 1] -> NHWC uint8: floor(x * 127.5 + 128) clamped to [0, 255], the
    official StyleGAN2-ADA tools' rule (round half up; torch.round would round half to even
    and differ from the official images by one level at exact halves)."""
    x = (images.detach().float().cpu() * 127.5 + 128).clamp(0, 255).floor().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def grid_image(images: torch.Tensor | np.ndarray, cols: int, pad: int = 0,
               col_titles: Sequence[str] = ()) -> Image.Image:
    """Tile images (float NCHW in [-1, 1], or uint8 NCHW) row by row, ``cols`` per row;
    optional titles above the columns."""
    arr = images if isinstance(images, np.ndarray) else to_uint8(images)
    if isinstance(images, np.ndarray):
        arr = arr.transpose(0, 2, 3, 1)
    n, h, w, c = arr.shape
    rows = -(-n // cols)
    title_h = 12 if col_titles else 0
    canvas = np.zeros((title_h + rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = title_h + pad + r * (h + pad), pad + k * (w + pad)
        canvas[y:y + h, x:x + w] = arr[i]
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    if col_titles:
        img = img.convert("RGB")
        draw = ImageDraw.Draw(img)
        for k, title in enumerate(col_titles[:cols]):
            draw.text((pad + k * (w + pad) + 1, 0), title[: max(1, w // 6)], fill=(255, 255, 255))
    return img


def save_image(img: Image.Image, path: Path) -> None:
    with atomic_write(path) as f:
        img.save(f, format=path.suffix.lstrip(".").upper().replace("JPG", "JPEG"))


def grid_side(resolution: int) -> int:
    """Images per grid row: up to 10x10 (as the thesis sampled 100), at most ~1024 px wide."""
    return int(min(10, max(4, 1024 // resolution)))


class ProgressGif:
    """An animated GIF of the sample grids over training.

    Each grid is reduced to a palette once, when added (re-quantising every frame at every
    snapshot made long runs spend most of their time here); long runs are evenly subsampled
    and the last frame is held a little longer.
    """

    def __init__(self, max_frames: int = 100, ms_per_frame: int = 200):
        self.max_frames, self.ms_per_frame = max_frames, ms_per_frame
        self.frames: list[Image.Image] = []

    def add(self, img: Image.Image) -> None:
        self.frames.append(img.convert("RGB").quantize(256, Image.Quantize.FASTOCTREE))

    def add_files(self, paths: Sequence[Path]) -> None:
        for path in paths:
            with Image.open(path) as img:
                self.add(img)

    def write(self, path: Path) -> None:
        frames = self.frames
        if not frames:
            return
        if len(frames) > self.max_frames:
            idx = np.linspace(0, len(frames) - 1, self.max_frames).round().astype(int)
            frames = [frames[i] for i in idx]
        durations = [self.ms_per_frame] * (len(frames) - 1) + [self.ms_per_frame * 5]
        with atomic_write(path) as f:
            frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:],
                           duration=durations, loop=0)
