"""Image folders: recursive; when every image sits in a subfolder, subfolders are classes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ganzoo.data.source import ImageSet, PrepareOptions
from ganzoo.errors import GanzooError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


def prepare_image(img: Image.Image, options: PrepareOptions) -> np.ndarray:
    """Convert to RGB or L, centre-crop to a square, resize with Lanczos; return uint8 CHW."""
    img = img.convert("L" if options.channels == 1 else "RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if s != options.resolution:
        img = img.resize((options.resolution,) * 2, Image.Resampling.LANCZOS)
    arr = np.asarray(img)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_folder(root: Path, options: PrepareOptions) -> ImageSet:
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if options.max_images is not None:
        files = files[:options.max_images]
    if not files:
        raise GanzooError(f"no images found under {root} "
                          f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    classes = sorted({f.relative_to(root).parts[0] for f in files})
    labelled = all(len(f.relative_to(root).parts) > 1 for f in files)
    images, labels, skipped = [], [], 0
    for f in files:
        try:
            with Image.open(f) as img:
                images.append(prepare_image(img, options))
        except (OSError, UnidentifiedImageError, ValueError):
            skipped += 1  # corrupt files are counted, never fatal
            continue
        labels.append(classes.index(f.relative_to(root).parts[0]) if labelled else 0)
    if not images:
        raise GanzooError(f"none of the {len(files)} image files under {root} could be read")
    if skipped:
        print(f"warning: skipped {skipped} unreadable image(s) under {root}")
    return ImageSet(root.name, np.stack(images),
                    np.asarray(labels, np.int64) if labelled else None,
                    tuple(classes) if labelled else ())
