"""A VGG16 perceptual distance for ``ganzoo project --extractor vgg16 --feature-weights
FILE``: LPIPS (Zhang et al., CVPR 2018), the distance the StyleGAN2 projector uses.

Nothing is downloaded: the weights are a file the user has, read as a plain state dict
(``torch.load(weights_only=True)``, no pickle code run) in one of two layouts:

- torchvision's ImageNet VGG16 (``vgg16-397923af.pth``): ``features.N.weight/bias`` for the
  13 convolutions (its ``classifier.*`` is not used), optionally with LPIPS's learned
  channel weights in the same file (``lin0.model.1.weight`` .. ``lin4``, the keys of the
  lpips package's ``weights/v0.1/vgg.pth``);
- the lpips package's whole model, ``torch.save(lpips.LPIPS(net='vgg').state_dict(), F)``:
  the trunk as ``net.sliceK.N.weight/bias`` (N: torchvision's index), the channel weights
  as ``lin*`` or ``lins.*``.

Without channel weights every channel counts the same (LPIPS's "baseline" variant, which
the description says).

The features of an image (RGB in [-1, 1], shifted and scaled to ImageNet's statistics) are
the activations after relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3, each divided by its
norm over the channels at every pixel, scaled by the square roots of the channel weights
and of 1 / (h w), and concatenated: the squared distance between two images' features is
their LPIPS distance.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from ganzoo.errors import GanzooError
from ganzoo.features import FeatureExtractor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: VGG16 (configuration "D" of Simonyan & Zisserman, 2015) up to relu5_3: output channels of
#: each 3x3 convolution, "M" a 2x2 max-pool. Each convolution is followed by a ReLU, so a
#: torchvision index is the position in this list counting a ReLU after every convolution.
PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
MIN_RESOLUTION, MAX_RESOLUTION = 16, 1024
#: The resolution an image is compared at when ``--extractor vgg16`` names none: the
#: model's, kept within these (LPIPS was calibrated on 64 px patches; the StyleGAN2
#: projector compares 1024 px faces at 256).
DEFAULT_RANGE = (64, 256)


def _layers() -> tuple[nn.Sequential, dict[str, int], list[int]]:
    """The convolution trunk in torchvision's layout, the index of each ReLU by name, and
    the channels at each tap."""
    modules: list[nn.Module] = []
    relus: dict[str, int] = {}
    channels, block, within, taps = 3, 1, 0, []
    for item in PLAN:
        if item == "M":
            modules.append(nn.MaxPool2d(2, 2))
            block, within = block + 1, 0
            continue
        modules.append(nn.Conv2d(channels, item, 3, padding=1))
        modules.append(nn.ReLU(inplace=False))
        channels, within = item, within + 1
        relus[f"relu{block}_{within}"] = len(modules) - 1
    for name in TAPS:
        conv = modules[relus[name] - 1]
        taps.append(conv.out_channels)
    return nn.Sequential(*modules), relus, taps


class VGG16Perceptual(FeatureExtractor):
    """LPIPS-VGG16 features (see the module's docstring) at ``resolution`` px."""

    name = "vgg16"
    feature_dim = 0                   # set per instance: it depends on the resolution
    input_resolution = 64
    takes_weights = True              # --feature-weights PATH (required: none is downloaded)
    default_layer = "relu4_3"

    def __init__(self, resolution: int = 64):
        super().__init__()
        if not (isinstance(resolution, int) and MIN_RESOLUTION <= resolution <= MAX_RESOLUTION
                and resolution % 16 == 0):
            raise GanzooError(f"vgg16: resolution must be a multiple of 16 in "
                              f"{MIN_RESOLUTION}-{MAX_RESOLUTION}, got {resolution!r}")
        self.features, self.relus, channels = _layers()
        self.layer_names = tuple(self.relus)
        self.input_resolution = resolution
        self.feature_dim = sum(c * (resolution >> i) ** 2 for i, c in enumerate(channels))
        for i, c in enumerate(channels):
            self.register_buffer(f"lin{i}", torch.ones(c))
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        # x in [-1, 1] -> ((x + 1) / 2 - mean) / std
        self.register_buffer("shift", (2 * mean - 1).view(1, 3, 1, 1))
        self.register_buffer("scale", (2 * std).view(1, 3, 1, 1))
        self.lpips_weights = False
        self.weights_id = "random"

    def _run(self, images: Tensor, wanted: Sequence[str]) -> dict[str, Tensor]:
        x = (images - self.shift) / self.scale
        last = max(self.relus[name] for name in wanted)
        out = {}
        by_index = {self.relus[name]: name for name in wanted}
        for i, module in enumerate(self.features[:last + 1]):
            x = module(x)
            if i in by_index:
                out[by_index[i]] = x
        return out

    def forward(self, images: Tensor) -> Tensor:
        acts = self._run(images, TAPS)
        parts = []
        for i, name in enumerate(TAPS):
            a = acts[name]
            unit = a / (torch.linalg.vector_norm(a, dim=1, keepdim=True) + 1e-10)
            weight = getattr(self, f"lin{i}").clamp_min(0).sqrt().view(1, -1, 1, 1)
            parts.append((unit * weight).flatten(1) / math.sqrt(a.shape[2] * a.shape[3]))
        return torch.cat(parts, 1)

    def activations(self, images: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        self.check_layers(layers)
        return self._run(images, layers)

    # -- weights ------------------------------------------------------------------------------

    @classmethod
    def for_metrics(cls, context) -> "VGG16Perceptual":
        """``--extractor vgg16[:RES] --feature-weights PATH`` (RES: the resolution images
        are compared at; default 64)."""
        return from_file(context.weights, context.argument, 64)


NEEDS_WEIGHTS = ("--extractor vgg16 needs --feature-weights PATH: torchvision's vgg16 state "
                 "dict (vgg16-397923af.pth) or an lpips VGG model's, with or without LPIPS's "
                 "channel weights; nothing is downloaded")


def from_file(weights: str | None, argument: str, default: int) -> VGG16Perceptual:
    """``--feature-weights`` and the ``:RES`` of ``--extractor vgg16:RES`` (else
    ``default``) -> the network."""
    if not weights:
        raise GanzooError(NEEDS_WEIGHTS)
    return load_vgg16(Path(weights), parse_resolution(argument, default))


def parse_resolution(argument: str, default: int) -> int:
    if not argument:
        return default
    try:
        return int(argument)
    except ValueError:
        raise GanzooError(f"--extractor vgg16:{argument}: the part after ':' is the "
                          "resolution images are compared at (a multiple of 16)") from None


def default_resolution(model_resolution: int) -> int:
    low, high = DEFAULT_RANGE
    return min(high, max(low, model_resolution))


_LPIPS_SLICE = re.compile(r"^net\.slice[1-5]\.(\d+)\.(weight|bias)$")
_LIN = re.compile(r"^lins?\.?([0-4])\.model\.1\.weight$")
_IGNORED = re.compile(r"^(classifier\.|scaling_layer\.)")


def load_vgg16(path: Path, resolution: int = 64) -> VGG16Perceptual:
    """The network with the weights in ``path``; anything else is one line naming it."""
    from ganzoo.data.download import file_digest
    from ganzoo.metrics.inception import read_state_dict
    state = read_state_dict(path)
    net = VGG16Perceptual(resolution)
    trunk, lin, unknown = {}, {}, []
    for key, value in state.items():
        slice_key = _LPIPS_SLICE.match(key)
        lin_key = _LIN.match(key)
        if key.startswith("features."):
            trunk[key[len("features."):]] = value
        elif slice_key:
            trunk[f"{slice_key[1]}.{slice_key[2]}"] = value
        elif lin_key:
            lin[int(lin_key[1])] = value
        elif not _IGNORED.match(key):
            unknown.append(key)
    expected = net.features.state_dict()
    if not trunk:
        if lin:
            raise GanzooError(f"{path}: LPIPS channel weights but no VGG16 convolutions: save "
                              "torchvision's vgg16 weights in the same file (torch.save({**vgg16, "
                              "**lpips}, PATH))")
        example = next(iter(state), "none")
        raise GanzooError(f"{path}: not VGG16 weights (no features.0.weight; its keys are "
                          f"like {example!r})")
    if unknown:
        raise GanzooError(f"{path}: not VGG16 weights: unexpected key {unknown[0]!r} "
                          f"({len(unknown)} such)")
    missing = [k for k in expected if k not in trunk]
    extra = [k for k in trunk if k not in expected]
    if missing or extra:
        what = (f"{len(missing)} convolution tensors missing (e.g. features.{missing[0]})"
                if missing else f"unexpected features.{extra[0]}")
        raise GanzooError(f"{path}: not VGG16 weights: {what}")
    for key, value in expected.items():
        if tuple(trunk[key].shape) != tuple(value.shape):
            raise GanzooError(f"{path}: not VGG16 weights: features.{key} has shape "
                              f"{tuple(trunk[key].shape)}, expected {tuple(value.shape)}")
    if lin and len(lin) != len(TAPS):
        raise GanzooError(f"{path}: LPIPS channel weights for {len(lin)} of the "
                          f"{len(TAPS)} layers (lin0-lin4)")
    for i, value in lin.items():
        want = getattr(net, f"lin{i}")
        if value.numel() != want.numel():
            raise GanzooError(f"{path}: LPIPS channel weights lin{i} have {value.numel()} "
                              f"values, expected {want.numel()}")
    bad = [k for k, v in {**trunk, **{f"lin{i}": v for i, v in lin.items()}}.items()
           if not torch.isfinite(v.float()).all()]
    if bad:
        raise GanzooError(f"{path}: non-finite values in {bad[0]}")
    with torch.no_grad():
        net.features.load_state_dict({k: v.float() for k, v in trunk.items()})
        for i, value in lin.items():
            getattr(net, f"lin{i}").copy_(value.float().flatten())
    net.lpips_weights = bool(lin)
    channels = "LPIPS channel weights" if lin else "uniform channel weights"
    net.weights_id = f"{path.name} (sha256 {file_digest(path)[:12]}), {channels}, {resolution} px"
    return net.eval().requires_grad_(False)
