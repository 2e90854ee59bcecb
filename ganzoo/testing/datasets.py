"""DatasetSourceContract: what a ``--data NAME`` source promises the trainer."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from ganzoo.data.source import DatasetSource, ImageSet, PrepareOptions
from ganzoo.testing.marks import contract_test


class DatasetSourceContract:
    """Subclass as ``TestMySource(DatasetSourceContract)`` and set ``source`` (an instance);
    optionally ``spec`` (what a user types; default the source's name, required for a
    prefix source such as ``places/``), ``options`` (how to prepare, small by default) and
    ``not_applicable``."""

    source: ClassVar[DatasetSource]
    spec: ClassVar[str | None] = None
    options: ClassVar[PrepareOptions] = PrepareOptions(16, 3, max_images=16)
    not_applicable: ClassVar[dict[str, str]] = {}

    def data_spec_text(self) -> str:
        return self.spec or self.source.name

    def load(self, **changes) -> ImageSet:
        return self.source.load(self.data_spec_text(), dataclasses.replace(self.options,
                                                                           **changes))

    @contract_test
    def test_declares_a_name_and_description(self):
        name = getattr(self.source, "name", None)
        assert isinstance(name, str) and name and " " not in name, \
            f"name must be a non-empty string without spaces, got {name!r}"
        assert str(self.source.description).strip(), \
            "give the source a description: `ganzoo list` shows it"

    @contract_test
    def test_load_gives_uint8_images_at_the_asked_size(self):
        data = self.load()
        assert isinstance(data, ImageSet), f"load returned {type(data).__name__}, not ImageSet"
        r, c = self.options.resolution, self.options.channels
        assert len(data) > 0, "load returned no images"
        assert data.images.shape[1:] == (c, r, r), \
            f"images are {data.images.shape[1:]} (C, H, W), asked for {(c, r, r)}"

    @contract_test
    def test_greyscale_when_asked(self):
        data = self.load(channels=1)
        assert data.channels == 1, f"asked for 1 channel, got {data.channels}"

    @contract_test
    def test_labels_match_the_class_names(self):
        data = self.load()
        if data.labels is None:
            assert not data.class_names, "class_names without labels"
            return
        assert np.issubdtype(data.labels.dtype, np.integer), \
            f"labels are {data.labels.dtype}, not integers"
        assert data.class_names and all(isinstance(n, str) and n for n in data.class_names), \
            "labelled data needs one non-empty class name per label value"
        assert 0 <= data.labels.min() and data.labels.max() < len(data.class_names), \
            f"labels span {data.labels.min()}-{data.labels.max()}, but there are " \
            f"{len(data.class_names)} class names"

    @contract_test
    def test_same_options_same_images(self):
        first, again = self.load(), self.load()
        assert np.array_equal(first.images, again.images), \
            "loading twice with the same options gave different images (seed the draws " \
            "from options.seed)"

    @contract_test
    def test_ganzoo_data_info_reads_it(self, ganzoo_cli):
        from ganzoo.testing.registration import plugin_args_for
        spec = self.data_spec_text()
        with plugin_args_for(self.source, "ganzoo_datasets") as plugin_args:
            result = ganzoo_cli(*plugin_args, "data", "info", spec, "--resolution",
                                self.options.resolution)
        assert result.code == 0, f"ganzoo data info {spec} failed: {result.err}"
