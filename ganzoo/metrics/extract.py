"""Feature extraction for metrics: building an extractor by name, and one preprocessing path
that real and generated images both take (uint8 -> [-1, 1] -> channels -> resize -> net).

Extractors are the classes plugins register with ``ganzoo_feature_extractors``. One that
needs weights or data to be built defines ``for_metrics(context)`` (a classmethod taking an
:class:`ExtractorContext`); any other is built with no arguments. An extractor that also has
``features_and_logits(images)`` (or ``logits``) gives the Inception Score; one that sets
``takes_weights = True`` accepts ``--feature-weights PATH`` (in ``context.weights``).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ganzoo.data.source import ImageSet
from ganzoo.errors import GanzooError
from ganzoo.features import FeatureExtractor

BATCH = 64


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class ExtractorContext:
    """What building an extractor may need: the data being evaluated and user options."""

    registry: object
    data: ImageSet                  # the evaluated run's data (reals)
    data_name: str                  # its --data spec, for messages
    weights: str | None = None      # --feature-weights PATH
    argument: str = ""              # the part after ':' in --extractor NAME:ARG
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    log: Callable[[str], None] = _stderr

    @property
    def resolution(self) -> int:
        return self.data.resolution

    @property
    def channels(self) -> int:
        return self.data.channels


@dataclass
class Extractor:
    """A built extractor and what a score on it must record."""

    net: FeatureExtractor
    name: str                       # as asked: "inception", "domain:shapes", ...
    weights: str                    # which weights (the standard ones, a file, a domain key)
    has_logits: bool

    @property
    def identity(self) -> str:
        return f"{self.name} [{self.weights}]"

    def resize_description(self, resolution: int) -> str:
        target = self.net.input_resolution
        if not target or target == resolution:
            return f"none ({resolution}px)"
        how = "bilinear" if target > resolution else "bilinear-antialias"
        return f"{how} {resolution}->{target}"

    def prepare(self, images: Tensor) -> Tensor:
        """uint8 NCHW -> the network's input: float in [-1, 1], its channels, its size.
        Upsampling is bilinear (as FID's reference implementation resizes to 299);
        downsampling is antialiased bilinear."""
        x = images.to(self.device).float().div_(127.5).sub_(1)
        want = getattr(self.net, "input_channels", 3)
        if x.shape[1] != want:
            if want == 1:
                w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
                x = (x * w).sum(1, keepdim=True)
            else:
                x = x.expand(-1, want, -1, -1)
        target = self.net.input_resolution
        if target and x.shape[-1] != target:
            x = F.interpolate(x, size=(target, target), mode="bilinear", align_corners=False,
                              antialias=target < x.shape[-1])
        return x.contiguous(memory_format=torch.channels_last)

    @property
    def device(self) -> torch.device:
        p = next(self.net.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @torch.no_grad()
    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Features [n, d] (and logits, or None) of uint8 images NCHW, as float32 on CPU."""
        x = self.prepare(images)
        if hasattr(self.net, "features_and_logits"):
            feats, logits = self.net.features_and_logits(x)
        elif self.has_logits:
            feats, logits = self.net(x), self.net.logits(x)
        else:
            feats, logits = self.net(x), None
        return feats.float().cpu(), None if logits is None else logits.float().cpu()

    def run(self, batches: Iterable[Tensor]) -> tuple[np.ndarray, np.ndarray | None]:
        feats, logits = [], []
        for batch in batches:
            f, lg = self(batch)
            feats.append(f)
            if lg is not None:
                logits.append(lg)
        return (torch.cat(feats).numpy(),
                torch.cat(logits).numpy() if logits else None)


def build_extractor(spec: str, context: ExtractorContext) -> Extractor:
    """``--extractor NAME[:ARG]`` -> a ready extractor (weights loaded, eval mode)."""
    name, _, argument = spec.partition(":")
    table = context.registry.feature_extractors()
    if name not in table:
        known = ", ".join(sorted(table)) or "none"
        raise GanzooError(f"unknown feature extractor '{name}' (known: {known})")
    cls = table[name].obj
    context.argument = argument
    if context.weights and not getattr(cls, "takes_weights", False):
        raise GanzooError(f"--feature-weights does not apply to extractor '{name}'")
    if hasattr(cls, "for_metrics"):
        net = cls.for_metrics(context)
    else:
        if argument:
            raise GanzooError(f"feature extractor '{name}' takes no ':{argument}'")
        net = cls()
    net = prepare_net(net, context.device)
    has_logits = hasattr(net, "features_and_logits") or hasattr(net, "logits")
    weights = str(getattr(net, "weights_id", "") or "built-in")
    return Extractor(net, spec, weights, has_logits)


def prepare_net(net: FeatureExtractor, device=None) -> FeatureExtractor:
    """Inference mode, on ``device``, channels-last (on CPU that makes Inception's
    convolutions and pools about 1.4x faster)."""
    net = net.to(device) if device is not None else net
    return net.to(memory_format=torch.channels_last).eval().requires_grad_(False)


def uint8_batches(images: np.ndarray, batch: int = BATCH) -> Iterable[Tensor]:
    for i in range(0, len(images), batch):
        yield torch.from_numpy(np.ascontiguousarray(images[i:i + batch]))


def quantise(images: Tensor) -> Tensor:
    """Generated float images in [-1, 1] -> uint8, as a saved PNG would hold them (so that
    generated and real images take the same path into the extractor)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
