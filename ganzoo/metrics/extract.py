"""Feature extraction for metrics: building an extractor by name, and one preprocessing path
that real and generated images both take (uint8 -> [-1, 1] -> channels -> resize -> net).

Extractors are the classes plugins register with ``ganzoo_feature_extractors``. One that
needs weights or data to be built defines ``for_metrics(context)`` (a classmethod taking an
:class:`ExtractorContext`); any other is built with no arguments. An extractor that also has
``features_and_logits(images)`` (or ``logits``) gives the Inception Score; one that sets
``takes_weights = True`` accepts ``--feature-weights PATH`` (in ``context.weights``). One
that sets ``takes_fid_mode = True`` (the FID Inception) reads the output of a named
preprocessing mode (:mod:`ganzoo.metrics.preprocess`, ``--fid-mode``) instead of [-1, 1]
images resized here.
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
from ganzoo.metrics.preprocess import (DEFAULT_FID_MODE, FID_MODES, RESIZE_NAMES,
                                       check_fid_mode)

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
    fid_mode: str | None = None     # --fid-mode (None: the default, where it applies)
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
    #: The preprocessing mode for a network that takes one (None for the others, which read
    #: [-1, 1] images resized by ganzoo's own bilinear filter).
    fid_mode: str | None = None

    def __post_init__(self):
        if getattr(self.net, "takes_fid_mode", False):
            self.fid_mode = check_fid_mode(self.fid_mode or DEFAULT_FID_MODE)
        elif self.fid_mode is not None:
            raise GanzooError(f"--fid-mode applies to the inception extractor only, not to "
                              f"'{self.name}'")

    @property
    def identity(self) -> str:
        return f"{self.name} [{self.weights}]"

    def resize_description(self, resolution: int) -> str:
        target = self.net.input_resolution
        if self.fid_mode:
            return f"{RESIZE_NAMES[self.fid_mode]} {resolution}->{target}"
        if not target or target == resolution:
            return f"none ({resolution}px)"
        how = "bilinear" if target > resolution else "bilinear-antialias"
        return f"{how} {resolution}->{target}"

    def prepare(self, images: Tensor) -> Tensor:
        """uint8 NCHW -> the network's input at its channels and size: the preprocessing
        mode's output for a network that takes one; else float in [-1, 1], upsampled
        bilinearly and downsampled with antialiasing."""
        x = images.to(self.device)
        if self.fid_mode:
            x = FID_MODES[self.fid_mode](self._channels(x), self.net.input_resolution)
            return x.contiguous(memory_format=torch.channels_last)
        x = self._channels(x.float().div_(127.5).sub_(1))
        target = self.net.input_resolution
        if target and x.shape[-1] != target:
            x = F.interpolate(x, size=(target, target), mode="bilinear", align_corners=False,
                              antialias=target < x.shape[-1])
        return x.contiguous(memory_format=torch.channels_last)

    def _channels(self, x: Tensor) -> Tensor:
        """The network's channel count: grey repeated to RGB (as NVlabs and clean-fid do),
        RGB to luminance for a grey network."""
        want = getattr(self.net, "input_channels", 3)
        if x.shape[1] != want:
            if want == 1:
                w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
                return (x.float() * w).sum(1, keepdim=True)
            return x.expand(-1, want, -1, -1)
        return x

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
    if context.fid_mode is not None:          # before weights are fetched or a net trained
        check_fid_mode(context.fid_mode)
        if not getattr(cls, "takes_fid_mode", False):
            raise GanzooError(f"--fid-mode applies to the inception extractor only, not to "
                              f"'{name}'")
    if hasattr(cls, "for_metrics"):
        net = cls.for_metrics(context)
    else:
        if argument:
            raise GanzooError(f"feature extractor '{name}' takes no ':{argument}'")
        net = cls()
    net = prepare_net(net, context.device)
    has_logits = hasattr(net, "features_and_logits") or hasattr(net, "logits")
    weights = str(getattr(net, "weights_id", "") or "built-in")
    return Extractor(net, spec, weights, has_logits, context.fid_mode)


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
