"""Data: one resolver for every ``--data SPEC``: a folder, a zip, or a registered name."""
from __future__ import annotations

from pathlib import Path

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
    stylegan2-ada layout, else a registered name."""
    check_options(options)
    path = Path(spec).expanduser()
    if path.is_dir():
        return load_folder(path, options)
    if path.is_file() and path.suffix.lower() == ".zip":
        return load_zip(path, options)
    source = find_source(spec, registry)
    if source is None:
        raise unknown_data(spec, registry)
    data = source.load(spec, options)
    if options.max_images is not None and len(data) > options.max_images:
        data = ImageSet(data.name, data.images[:options.max_images],
                        None if data.labels is None else data.labels[:options.max_images],
                        data.class_names)
    return data
