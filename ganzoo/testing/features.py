"""FeatureExtractorContract: what a feature network promises metrics and DeepDream."""
from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from ganzoo.errors import GanzooError
from ganzoo.features import FeatureExtractor
from ganzoo.testing.marks import contract_test


class FeatureExtractorContract:
    """Subclass as ``TestMyFeatures(FeatureExtractorContract)`` and set ``extractor`` (the
    FeatureExtractor subclass); override :meth:`make` when it takes constructor arguments
    or needs weights. ``batch`` images (default 3) are fed at its input resolution."""

    extractor: ClassVar[type[FeatureExtractor]]
    batch: ClassVar[int] = 3
    not_applicable: ClassVar[dict[str, str]] = {}

    def make(self) -> FeatureExtractor:
        return self.extractor()

    def images(self, net: FeatureExtractor) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        r = net.input_resolution
        return torch.rand(self.batch, net.input_channels, r, r, generator=gen) * 2 - 1

    @contract_test
    def test_declares_name_dims_and_resolution(self):
        cls = self.extractor
        assert isinstance(getattr(cls, "name", None), str) and cls.name, "name must be a string"
        net = self.make()
        assert isinstance(net.feature_dim, int) and net.feature_dim > 0, \
            f"feature_dim must be a positive int, got {net.feature_dim!r}"
        assert isinstance(net.input_resolution, int) and net.input_resolution > 0, \
            f"input_resolution must be a positive int, got {net.input_resolution!r}"

    @contract_test
    def test_features_have_the_declared_shape_and_are_finite(self):
        net = self.make().eval()
        with torch.no_grad():
            features = net(self.images(net))
        assert tuple(features.shape) == (self.batch, net.feature_dim), \
            f"features are {tuple(features.shape)}, expected {(self.batch, net.feature_dim)}"
        assert features.is_floating_point() and torch.isfinite(features).all(), \
            "features must be finite floats"

    @contract_test
    def test_features_of_an_image_do_not_depend_on_its_batch(self):
        net = self.make().eval()
        images = self.images(net)
        with torch.no_grad():
            together, alone = net(images)[:1], net(images[:1])
        assert torch.allclose(together, alone, rtol=1e-4, atol=1e-5), \
            "an image's features change with the other images of its batch (eval mode?)"

    @contract_test
    def test_named_layers_give_activations(self):
        net = self.make().eval()
        if not net.layer_names:
            pytest.skip("no named layers")
        if net.default_layer is not None:
            assert net.default_layer in net.layer_names, \
                f"default_layer {net.default_layer!r} is not in layer_names"
        with torch.no_grad():
            acts = net.activations(self.images(net), list(net.layer_names))
        for name in net.layer_names:
            assert name in acts and acts[name].dim() == 4, \
                f"activations gave no [N, C, h, w] tensor for layer {name!r}"
        with pytest.raises(GanzooError):
            net.check_layers(["no-such-layer"])
