"""The `nn` metric: each sample's nearest training images in pixel and feature space, a grid a
person can look at, and a memorisation rate.

Pixel space: Euclidean distance between images in [-1, 1] at the data's resolution (every
training image). Feature space: Euclidean distance between extractor features (the reference
images: all training images up to 50,000). Memorisation rate: the share of samples closer to
some training image than half the median distance between a training image and its nearest
other training image (:func:`ganzoo.metrics.measures.memorisation_rate`), in each space.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ganzoo.metrics import measures
from ganzoo.viz import save_image

REAL_CHUNK = 1024
TYPICAL_SUBSET = 1000


def _pixels(images) -> torch.Tensor:
    return torch.as_tensor(images).float().div(127.5).sub(1).flatten(1)


def _real_chunks(images: np.ndarray):
    for i in range(0, len(images), REAL_CHUNK):
        yield i, _pixels(np.ascontiguousarray(images[i:i + REAL_CHUNK]))


def nearest_neighbours(evaluator, samples, n: int, kimg, out_dir: Path | None, text: str):
    data, ref = evaluator.data, evaluator.reference
    k = 3
    fake_px = _pixels(samples.pixels[:n])
    px_d, px_i = measures.knn(fake_px, _real_chunks(data.images), k)
    ft_d, ft_i = measures.knn(torch.from_numpy(samples.features[:n]), ref.features, k)
    ft_i = torch.from_numpy(ref.indices)[ft_i]            # reference rows -> data indices
    gen = torch.Generator().manual_seed(evaluator.seed)
    sub = torch.randperm(len(data), generator=gen)[:TYPICAL_SUBSET]
    train_px, _ = measures.knn(_pixels(data.images[sub.numpy()]), _real_chunks(data.images), 1,
                               exclude=sub)
    sub_f = torch.randperm(ref.count, generator=gen)[:TYPICAL_SUBSET]
    train_ft, _ = measures.knn(torch.from_numpy(ref.features[sub_f.numpy()]), ref.features, 1,
                               exclude=sub_f)
    pixel = measures.memorisation_rate(px_d[:, 0], train_px[:, 0])
    feature = measures.memorisation_rate(ft_d[:, 0], train_ft[:, 0])
    details = {"memorisation": {"feature": feature, "pixel": pixel},
               "num_real": len(data)}
    if out_dir is not None:
        name = f"nn{'' if kimg is None else f'-{kimg:010.3f}'}.png"
        rows = torch.argsort(ft_d[:, 0])[:8]
        img = nn_grid(samples.pixels, data.images, rows, px_d, px_i, ft_d, ft_i,
                      (pixel["threshold"], feature["threshold"]))
        save_image(img, Path(out_dir) / name)
        details["grid"] = str(Path(out_dir) / name)
    suffix = text.replace("nn", "", 1)          # nn10k -> memorisation10k, ...
    return {f"memorisation{suffix}": feature["rate"],
            f"memorisation_pixel{suffix}": pixel["rate"],
            f"nn_distance{suffix}": feature["sample_nn_median"]}, details


def _tile(image: np.ndarray, size: int) -> Image.Image:
    arr = image.transpose(1, 2, 0)
    img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).convert("RGB")
    return img.resize((size, size), Image.NEAREST if size >= img.width else Image.LANCZOS)


def nn_grid(fakes: torch.Tensor, reals: np.ndarray, rows, px_d, px_i, ft_d, ft_i,
            thresholds: tuple[float, float]) -> Image.Image:
    """One row per sample: the sample, its k nearest training images by pixels, then by
    features, each captioned with its distance (red: below the memorisation threshold)."""
    res = reals.shape[-1]
    size = int(min(128, max(64, res)))
    k = px_d.shape[1]
    gap, group_gap, caption, header = 4, 16, 14, 16
    cols_x = [gap]
    for c in range(1, 1 + 2 * k):
        cols_x.append(cols_x[-1] + size + (group_gap if c in (1, 1 + k) else gap))
    width = cols_x[-1] + size + gap
    height = header + len(rows) * (size + caption + gap) + gap
    canvas = Image.new("RGB", (width, height), (40, 40, 40))
    draw = ImageDraw.Draw(canvas)
    draw.text((cols_x[0], 2), "sample", fill=(230, 230, 230))
    draw.text((cols_x[1], 2), f"nearest training images: pixels (L2)", fill=(230, 230, 230))
    draw.text((cols_x[1 + k], 2), "features (L2)", fill=(230, 230, 230))
    for r, s in enumerate(rows.tolist()):
        y = header + r * (size + caption + gap)
        canvas.paste(_tile(fakes[s].numpy(), size), (cols_x[0], y))
        for j in range(k):
            for col, d, i, thr in ((1 + j, px_d, px_i, thresholds[0]),
                                   (1 + k + j, ft_d, ft_i, thresholds[1])):
                canvas.paste(_tile(reals[int(i[s, j])], size), (cols_x[col], y))
                dist = float(d[s, j])
                draw.text((cols_x[col] + 1, y + size + 1), f"d={dist:.3g}",
                          fill=(255, 90, 90) if dist < thr else (200, 200, 200))
    return canvas
