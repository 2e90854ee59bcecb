"""The built-in data sources, registered through the "ganzoo" entry point like any plugin."""
from __future__ import annotations

from ganzoo.data.cache import cache_key, load_prepared, save_prepared
from ganzoo.data.shapes import DEFAULT_COUNT, make_shapes
from ganzoo.data.source import DatasetSource, ImageSet, PrepareOptions
from ganzoo.hookspecs import hookimpl


class ShapesSource(DatasetSource):
    name = "shapes"
    description = ("embedded: coloured circles, squares, triangles, stars and rings "
                   f"({DEFAULT_COUNT} images, 5 classes), no download")

    def load(self, spec: str, options: PrepareOptions) -> ImageSet:
        count = min(DEFAULT_COUNT, options.max_images or DEFAULT_COUNT)
        key = cache_key(source="shapes", version=2, count=count, resolution=options.resolution,
                        channels=options.channels, seed=options.seed)
        data = load_prepared(key)
        if data is None:
            data = make_shapes(count, options.resolution, options.seed, options.channels)
            save_prepared(key, data)
        return data


@hookimpl
def ganzoo_datasets() -> list[DatasetSource]:
    return [ShapesSource()]
