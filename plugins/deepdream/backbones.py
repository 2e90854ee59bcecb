"""Backbones that need no download: the small classifier `ganzoo train deepdream` fits, and the
convolutions of any GAN's discriminator.

Both are FeatureExtractors with named layers, so the dream code treats them exactly like
InceptionV1.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.errors import GanzooError
from ganzoo.features import FeatureExtractor


class SmallClassifier(FeatureExtractor):
    """conv1 ... convN: 3x3 convolution, BatchNorm, ReLU, each after the first halving the
    resolution with a 2x2 max pool and doubling the width; then global average pooling and
    a linear layer to the classes. Fully convolutional, so it dreams at any size."""

    name = "deepdream-classifier"
    input_resolution = 64

    def __init__(self, channels: int, num_classes: int, width: int, blocks: int):
        super().__init__()
        widths = [width * 2 ** k for k in range(blocks)]
        self.input_channels = channels
        self.layer_names = tuple(f"conv{k + 1}" for k in range(blocks))
        # The second-deepest block: shapes' parts (edges, corners, arcs), not whole classes.
        self.default_layer = self.layer_names[max(0, blocks - 2)]
        self.feature_dim = widths[-1]
        self.blocks = nn.ModuleDict({
            name: nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                                nn.BatchNorm2d(cout), nn.ReLU())
            for name, cin, cout in zip(self.layer_names, [channels] + widths, widths)})
        self.head = nn.Linear(widths[-1], max(1, num_classes))

    def activations(self, images: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        self.check_layers(layers)
        deepest = max(self.layer_names.index(name) for name in layers)
        out: dict[str, Tensor] = {}
        x = images
        for k, name in enumerate(self.layer_names[:deepest + 1]):
            x = self.blocks[name](F.max_pool2d(x, 2) if k else x)
            if name in layers:
                out[name] = x
        return out

    def forward(self, images: Tensor) -> Tensor:
        last = self.layer_names[-1]
        return self.activations(images, [last])[last].mean(dim=(2, 3))

    def logits(self, images: Tensor) -> Tensor:
        return self.head(self.forward(images))


class _Enough(Exception):
    """Raised from a forward hook once every asked-for layer is captured: no work past it."""


class DiscriminatorLayers(FeatureExtractor):
    """The outputs of a discriminator's convolutions, named conv1 ... convN in the order the
    forward pass runs them (conv1 sees the pixels; the last is the critic's own output for
    DCGAN). A discriminator is an image network trained on the run's data, so it can serve
    as a backbone offline."""

    name = "discriminator"
    feature_dim = 0
    input_resolution = 0

    def __init__(self, D: nn.Module, arch: str, resolution: int, channels: int):
        super().__init__()
        self.D = D.eval().requires_grad_(False)
        self.name = f"{arch} discriminator"
        self.input_resolution = resolution
        self.input_channels = channels
        self.convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
        order = self._call_order(torch.zeros(1, channels, resolution, resolution,
                                             device=next(D.parameters()).device))
        if not order:
            raise GanzooError(f"the {arch} discriminator has no convolutions to dream with")
        self.order = order
        self.layer_names = tuple(f"conv{k + 1}" for k in range(len(order)))
        self.default_layer = self.layer_names[(len(order) - 1) // 2]

    def _call_order(self, probe: Tensor) -> list[nn.Conv2d]:
        """The convolutions in the order a forward pass calls them."""
        called: list[nn.Conv2d] = []
        handles = [m.register_forward_hook(lambda mod, i, o: called.append(mod))
                   for m in self.convs]
        try:
            with torch.no_grad():
                self.D(probe)
        finally:
            for h in handles:
                h.remove()
        return called

    def activations(self, images: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        self.check_layers(layers)
        wanted = {self.layer_names.index(name): name for name in layers}
        out: dict[str, Tensor] = {}
        calls = 0

        def capture(module, inputs, output):
            nonlocal calls
            if calls in wanted:
                out[wanted[calls]] = output
            calls += 1
            if len(out) == len(wanted):
                raise _Enough
        handles = [m.register_forward_hook(capture) for m in set(self.order)]
        try:
            self.D(images)
        except _Enough:
            pass
        finally:
            for h in handles:
                h.remove()
        return out

    def forward(self, images: Tensor) -> Tensor:
        last = self.layer_names[-1]
        return self.activations(images, [last])[last].mean(dim=(2, 3))
