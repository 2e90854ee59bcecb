"""Feature extractors: image networks that metrics (FID, KID, ...) and DeepDream read from.

Plugins register subclasses through the ``ganzoo_feature_extractors`` hook.
"""
from __future__ import annotations

import abc
from typing import ClassVar

import torch
from torch import Tensor


class FeatureExtractor(torch.nn.Module, abc.ABC):
    """Maps images (NCHW float in [-1, 1]) to feature vectors [N, feature_dim]."""

    name: ClassVar[str]
    feature_dim: ClassVar[int]
    #: Resolution the network expects; inputs are resized to it by the caller.
    input_resolution: ClassVar[int]

    @abc.abstractmethod
    def forward(self, images: Tensor) -> Tensor: ...
