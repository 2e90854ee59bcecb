"""Data: one resolver for every ``--data SPEC``: a folder, or a registered data set name."""
from __future__ import annotations

from pathlib import Path

from ganzoo.data.folder import load_folder
from ganzoo.data.source import DatasetSource, ImageSet, PrepareOptions
from ganzoo.errors import GanzooError

__all__ = ["DatasetSource", "ImageSet", "PrepareOptions", "resolve_data"]


def resolve_data(spec: str, options: PrepareOptions, registry) -> ImageSet:
    """Load ``spec`` prepared as ``options`` say: an existing folder, else a registered name
    (exact, or a registered prefix ending in "/", e.g. "places/")."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return load_folder(path, options)
    sources = registry.datasets()
    source = sources.get(spec)
    if source is None:
        prefixes = [n for n in sources if n.endswith("/") and spec.startswith(n)]
        source = sources[prefixes[0]] if prefixes else None
    if source is None:
        if path.exists():
            raise GanzooError(f"--data {spec}: is a file, not an image folder or a data set")
        looks_like_path = "/" in spec or "\\" in spec or spec.startswith(".")
        what = "no such folder" if looks_like_path else "no such folder or data set"
        raise GanzooError(f"--data {spec}: {what} (registered data sets: "
                          f"{', '.join(sorted(sources)) or 'none'})")
    data = source.obj.load(spec, options)
    if options.max_images is not None and len(data) > options.max_images:
        data = ImageSet(data.name, data.images[:options.max_images],
                        None if data.labels is None else data.labels[:options.max_images],
                        data.class_names)
    return data
