"""Feature extractors: image networks that metrics (FID, KID, ...) and DeepDream read from.

Plugins register subclasses through the ``ganzoo_feature_extractors`` hook.
"""
from __future__ import annotations

import abc
from typing import ClassVar, Sequence

import torch
from torch import Tensor

from ganzoo.errors import GanzooError


class FeatureExtractor(torch.nn.Module, abc.ABC):
    """Maps images (NCHW float in [-1, 1]) to feature vectors [N, feature_dim].

    A network that also names its intermediate layers (``layer_names``, in forward order) and
    implements :meth:`activations` can serve as a DeepDream backbone.
    """

    name: ClassVar[str]
    feature_dim: ClassVar[int]
    #: Resolution the network expects; inputs are resized to it by the caller.
    input_resolution: ClassVar[int]
    #: Intermediate layers :meth:`activations` can return, input side first.
    layer_names: tuple[str, ...] = ()
    #: The layer DeepDream amplifies when none is asked for.
    default_layer: str | None = None
    #: Image channels the network reads (1: greyscale; callers convert RGB to luminance).
    input_channels: int = 3

    @abc.abstractmethod
    def forward(self, images: Tensor) -> Tensor: ...

    def activations(self, images: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        """Activations [N, C, h, w] of the named layers for images NCHW in [-1, 1].

        Networks compute only as deep as the deepest layer asked for.
        """
        raise GanzooError(f"feature extractor '{self.name}' exposes no named layers")

    def check_layers(self, layers: Sequence[str]) -> None:
        """One clear error for a layer name this network does not have."""
        for layer in layers:
            if layer not in self.layer_names:
                raise GanzooError(f"backbone '{self.name}' has no layer '{layer}'; its layers: "
                                  f"{', '.join(self.layer_names) or 'none'}")
