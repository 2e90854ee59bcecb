"""Image folders: recursive; when every image sits in a subfolder, subfolders are classes."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ganzoo.data.prepare import ImageFiles, is_utf8, load_files
from ganzoo.data.source import ImageSet, PrepareOptions
from ganzoo.errors import GanzooError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


def is_image_name(name: str) -> bool:
    """An image by its suffix; hidden files and folders (".DS_Store", "._x.png" resource
    forks, ".ipynb_checkpoints/") are never images."""
    parts = name.replace("\\", "/").split("/")
    return Path(name).suffix.lower() in IMAGE_SUFFIXES and not any(
        p.startswith(".") for p in parts)


def list_images(root: Path) -> list[str]:
    """Image files under ``root`` as sorted POSIX paths relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if is_image_name(p.relative_to(root).as_posix()) and p.is_file())


def folder_labels(names: list[str]) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """Labels from the first path component, if every image sits in a subfolder. A folder
    whose name is not UTF-8 is no class: preparation skips its files (label -1, never kept)."""
    if not names or not all("/" in n for n in names):
        return None, ()
    tops = [n.split("/", 1)[0] for n in names]
    classes = tuple(sorted({t for t in tops if is_utf8(t)}))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(t, -1) for t in tops], np.int64), classes


def load_folder(root: Path, options: PrepareOptions) -> ImageSet:
    root = Path(root)
    names = list_images(root)
    if not names:
        raise GanzooError(f"no images found under {root} "
                          f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    labels, classes = folder_labels(names)
    return load_files(ImageFiles(root, tuple(names)), options, name=root.name,
                      labels=labels, class_names=classes)
