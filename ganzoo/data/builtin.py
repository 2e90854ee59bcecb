"""The built-in data sources, registered through the "ganzoo" entry point like any plugin."""
from __future__ import annotations

from ganzoo.data import bin_objects
from ganzoo.data.cache import cache_key, load_prepared, save_prepared
from ganzoo.data.registered import downloadable_sources
from ganzoo.data.shapes import DEFAULT_COUNT, make_shapes
from ganzoo.data.source import DatasetSource, ImageSet, PrepareOptions
from ganzoo.hookspecs import hookimpl


class ShapesSource(DatasetSource):
    """`shapes` (white upright shapes on black) and `shapes/colour` (the harder coloured,
    rotated set); see ganzoo.data.shapes."""

    def __init__(self, style: str = "plain"):
        self.style = style
        self.name = "shapes" if style == "plain" else f"shapes/{style}"
        what = ("white upright" if style == "plain"
                else "coloured, rotated, on coloured backgrounds:")
        self.description = (f"embedded: {what} circles, squares, triangles, stars and rings "
                            f"({DEFAULT_COUNT} images, 5 classes), no download")

    def load(self, spec: str, options: PrepareOptions) -> ImageSet:
        count = min(DEFAULT_COUNT, options.max_images or DEFAULT_COUNT)
        # version 3: the plain style became the default `shapes`; the coloured images are
        # those of version 2.
        key = cache_key(source="shapes", version=3, style=self.style, count=count,
                        resolution=options.resolution, channels=options.channels,
                        seed=options.seed)
        data = load_prepared(key)
        if data is None:
            data = make_shapes(count, options.resolution, options.seed, options.channels,
                               self.style)
            save_prepared(key, data)
        return data


class BinObjectsSource(DatasetSource):
    """`bin-objects` (labels: kind of object) and `bin-objects/count` (labels: how many)."""

    def __init__(self, labels: str = "kind"):
        self.labels = labels
        self.name = "bin-objects" if labels == "kind" else f"bin-objects/{labels}"
        what = ("kind: " + ", ".join(bin_objects.KINDS) if labels == "kind"
                else "object count 1-6")
        self.description = (f"embedded: 1-6 objects in a grey bin seen from above, labelled "
                            f"by {what} ({bin_objects.DEFAULT_COUNT} images), no download")

    def load(self, spec: str, options: PrepareOptions) -> ImageSet:
        count = min(bin_objects.DEFAULT_COUNT, options.max_images or bin_objects.DEFAULT_COUNT)
        # One cache entry for both label modes: image i is the same, only labels differ.
        key = cache_key(source="bin-objects", version=1, count=count,
                        resolution=options.resolution, channels=options.channels,
                        seed=options.seed)
        data = load_prepared(key)
        if data is None:
            data = bin_objects.make_bin_objects(count, options.resolution, options.seed,
                                                options.channels)
            save_prepared(key, data)
        labels, class_names = bin_objects.labels_for(count, self.labels)
        name = "bin-objects" if self.labels == "kind" else f"bin-objects-{self.labels}"
        return ImageSet(name, data.images, labels, class_names)


@hookimpl
def ganzoo_datasets() -> list[DatasetSource]:
    return [ShapesSource("plain"), ShapesSource("colour"), BinObjectsSource("kind"),
            BinObjectsSource("count"), *downloadable_sources()]
