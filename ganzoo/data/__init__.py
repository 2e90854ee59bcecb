"""Data: one resolver for every ``--data SPEC``: a folder, a zip, or a registered name."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ganzoo.data.folder import load_folder
from ganzoo.data.prepare import check_options
from ganzoo.data.source import DatasetSource, ImageSet, PrepareOptions
from ganzoo.data.zipset import load_zip
from ganzoo.errors import GanzooError

__all__ = ["DatasetSource", "ImageSet", "PrepareOptions", "find_source", "load_folder",
           "resolve_data", "unknown_data"]


def find_source(spec: str, registry) -> DatasetSource | None:
    """The registered source for ``spec``: an exact name, else a registered prefix ending
    in "/" (e.g. "places/"); None if there is none."""
    sources = registry.datasets()
    if spec in sources:
        return sources[spec].obj
    prefixes = sorted((n for n in sources if n.endswith("/") and spec.startswith(n)),
                      key=len, reverse=True)
    return sources[prefixes[0]].obj if prefixes else None


def unknown_data(spec: str, registry) -> GanzooError:
    """The error for a spec that is no folder, zip or registered name."""
    path = Path(spec).expanduser()
    if path.exists():
        return GanzooError(f"--data {spec}: is a file, not an image folder, a .zip or a "
                           "data set")
    looks_like_path = "/" in spec or "\\" in spec or spec.startswith(".")
    what = "no such folder" if looks_like_path else "no such folder or data set"
    names = ", ".join(sorted(registry.datasets())) or "none"
    return GanzooError(f"--data {spec}: {what} (registered data sets: {names})")


def resolve_data(spec: str, options: PrepareOptions, registry) -> ImageSet:
    """Load ``spec`` prepared as ``options`` say: an existing folder, a zip in the
    stylegan2-ada layout, a registered name, or ``A+B``: the union of two (or more) specs
    (``--max-images`` then limits the union)."""
    check_options(options)
    path = Path(spec).expanduser()
    if "+" in spec and not path.exists():
        parts = [resolve_data(part, dataclasses.replace(options, max_images=None), registry)
                 for part in spec.split("+")]
        data = union(spec, parts)
        return data if options.max_images is None else data.subset(0, options.max_images)
    if path.is_dir():
        return load_folder(path, options)
    if path.is_file() and path.suffix.lower() == ".zip":
        return load_zip(path, options)
    source = find_source(spec, registry)
    if source is None:
        raise unknown_data(spec, registry)
    data = source.load(spec, options)
    return data if options.max_images is None else data.subset(0, options.max_images)


def union(name: str, parts: list[ImageSet]) -> ImageSet:
    """Images of every part, in order. Labels only if every part has them: classes are matched
    by name (a class new in a later part gets the next number)."""
    images = np.concatenate([p.images for p in parts])
    if any(p.labels is None for p in parts):
        return ImageSet(name, images)
    classes: list[str] = []
    labels = []
    for part in parts:
        for c in part.class_names:
            if c not in classes:
                classes.append(c)
        to_union = np.array([classes.index(c) for c in part.class_names], dtype=np.int64)
        labels.append(to_union[part.labels])
    return ImageSet(name, images, np.concatenate(labels), tuple(classes))
