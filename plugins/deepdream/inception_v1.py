"""InceptionV1 (GoogLeNet, Szegedy et al. 2014, "Going Deeper with Convolutions") with the 12
layer names DeepDream tutorials use (conv2d0 ... mixed5b), and its ImageNet weights.

The widths and the order of layers follow the paper's table (figure 5.2 of
../shared/seeds/003_*.txt). Three details follow the widely used torchvision GoogLeNet weights
instead, so that those weights load: BatchNorm (eps 1e-3) after every convolution (the paper
used local response normalisation), a 3x3 kernel in the branch the paper calls "5x5"
(``wide_kernel``, taken from the weights' shapes when loading), and a 2x2 max pool before
mixed5a. Those weights expect images in [-1, 1], ganzoo's convention, so no normalisation is
needed in front.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.errors import GanzooError
from ganzoo.features import FeatureExtractor

LAYERS = ("conv2d0", "conv2d1", "conv2d2", "mixed3a", "mixed3b", "mixed4a", "mixed4b",
          "mixed4c", "mixed4d", "mixed4e", "mixed5a", "mixed5b")

# Max pools (kernel, stride) in front of these layers; ceil_mode gives the paper's sizes
# (224 -> 112 -> 56 -> 28 -> 14 -> 7).
POOL_BEFORE = {"conv2d1": (3, 2), "mixed3a": (3, 2), "mixed4a": (3, 2), "mixed5a": (2, 2)}


@dataclass(frozen=True)
class MixedWidths:
    """One inception module's row of the paper's table."""

    inputs: int
    b1x1: int
    b3x3_reduce: int
    b3x3: int
    b5x5_reduce: int
    b5x5: int
    pool_proj: int

    @property
    def outputs(self) -> int:
        return self.b1x1 + self.b3x3 + self.b5x5 + self.pool_proj


MIXED = {
    "mixed3a": MixedWidths(192, 64, 96, 128, 16, 32, 32),
    "mixed3b": MixedWidths(256, 128, 128, 192, 32, 96, 64),
    "mixed4a": MixedWidths(480, 192, 96, 208, 16, 48, 64),
    "mixed4b": MixedWidths(512, 160, 112, 224, 24, 64, 64),
    "mixed4c": MixedWidths(512, 128, 128, 256, 24, 64, 64),
    "mixed4d": MixedWidths(512, 112, 144, 288, 32, 64, 64),
    "mixed4e": MixedWidths(528, 256, 160, 320, 32, 128, 128),
    "mixed5a": MixedWidths(832, 256, 160, 320, 32, 128, 128),
    "mixed5b": MixedWidths(832, 384, 192, 384, 48, 128, 128),
}


class ConvBN(nn.Module):
    """Convolution without bias, BatchNorm, ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class Mixed(nn.Module):
    """An inception module: 1x1, 1x1 -> 3x3, 1x1 -> "5x5", and 3x3 max pool -> 1x1 branches,
    concatenated along channels."""

    def __init__(self, w: MixedWidths, wide_kernel: int):
        super().__init__()
        self.b1x1 = ConvBN(w.inputs, w.b1x1, 1)
        self.b3x3_reduce = ConvBN(w.inputs, w.b3x3_reduce, 1)
        self.b3x3 = ConvBN(w.b3x3_reduce, w.b3x3, 3)
        self.b5x5_reduce = ConvBN(w.inputs, w.b5x5_reduce, 1)
        self.b5x5 = ConvBN(w.b5x5_reduce, w.b5x5, wide_kernel)
        self.pool_proj = ConvBN(w.inputs, w.pool_proj, 1)

    def forward(self, x: Tensor) -> Tensor:
        pooled = F.max_pool2d(x, 3, stride=1, padding=1, ceil_mode=True)
        return torch.cat([self.b1x1(x), self.b3x3(self.b3x3_reduce(x)),
                          self.b5x5(self.b5x5_reduce(x)), self.pool_proj(pooled)], 1)


class InceptionV1(FeatureExtractor):
    """GoogLeNet; features: the 1024 average-pooled channels of mixed5b."""

    name = "inception-v1"
    feature_dim = 1024
    input_resolution = 224
    layer_names = LAYERS
    default_layer = "mixed4c"

    def __init__(self, num_classes: int = 1000, wide_kernel: int = 3):
        super().__init__()
        self.conv2d0 = ConvBN(3, 64, 7, stride=2)
        self.conv2d1 = ConvBN(64, 64, 1)
        self.conv2d2 = ConvBN(64, 192, 3)
        for name, widths in MIXED.items():
            self.add_module(name, Mixed(widths, wide_kernel))
        self.dropout = nn.Dropout(0.4)
        self.classifier = nn.Linear(1024, num_classes)

    def activations(self, images: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        self.check_layers(layers)
        wanted = set(layers)
        deepest = max(LAYERS.index(name) for name in wanted)
        out: dict[str, Tensor] = {}
        x = images
        for name in LAYERS[:deepest + 1]:     # no work past the deepest layer asked for
            if name in POOL_BEFORE:
                kernel, stride = POOL_BEFORE[name]
                x = F.max_pool2d(x, kernel, stride, ceil_mode=True)
            x = getattr(self, name)(x)
            if name in wanted:
                out[name] = x
        return out

    def forward(self, images: Tensor) -> Tensor:
        return self.activations(images, ["mixed5b"])["mixed5b"].mean(dim=(2, 3))

    def logits(self, images: Tensor) -> Tensor:
        """ImageNet class scores."""
        return self.classifier(self.dropout(self.forward(images)))


def random_inception_v1(seed: int = 0) -> InceptionV1:
    """Random weights for tests and timing: He-normal convolutions keep activations from
    vanishing through 22 layers, so every layer has a usable gradient."""
    gen = torch.Generator().manual_seed(seed)
    net = InceptionV1()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
    return net.eval()


# -- ImageNet weights -----------------------------------------------------------------------

WEIGHTS_URL = "https://download.pytorch.org/models/googlenet-1378be20.pth"
# torch.hub's convention: the file name carries the first 8 hex digits of the file's sha256
# (the full digest is not published).
WEIGHTS_SHA256_PREFIX = "1378be20"

# torchvision GoogLeNet names -> ours.
_TORCHVISION_NAMES = [
    (r"^conv1\.", "conv2d0."), (r"^conv2\.", "conv2d1."), (r"^conv3\.", "conv2d2."),
    (r"^inception(\d[a-e])\.", r"mixed\1."), (r"\.branch1\.", ".b1x1."),
    (r"\.branch2\.0\.", ".b3x3_reduce."), (r"\.branch2\.1\.", ".b3x3."),
    (r"\.branch3\.0\.", ".b5x5_reduce."), (r"\.branch3\.1\.", ".b5x5."),
    (r"\.branch4\.1\.", ".pool_proj."), (r"^fc\.", "classifier."),
]


def from_torchvision_names(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a torchvision GoogLeNet state dict to our layer names; its auxiliary
    classifiers (aux1, aux2: training-time only) are dropped. Our own names pass through."""
    renamed = {}
    for key, value in state.items():
        if key.startswith(("aux1.", "aux2.")):
            continue
        for pattern, replacement in _TORCHVISION_NAMES:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict file, loaded without running pickled code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GanzooError(f"weights file {path} does not exist")
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):        # a pickled Python object, not plain data
            raise GanzooError(f"weights file {path} holds Python objects that need pickle "
                              "code execution to load; refused (a state dict needs none)")
        raise GanzooError(f"weights file {path} is unreadable (corrupt or not a torch file)")
    except Exception as e:  # noqa: BLE001 - zip errors, truncation, not a torch file
        raise GanzooError(f"weights file {path} is unreadable: {_first_line(e)}")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise GanzooError(f"weights file {path} is not a state dict (name -> tensor)")
    return state


def inception_from_state_dict(state: dict[str, Tensor], source: str) -> InceptionV1:
    """Build InceptionV1 from a torchvision-style or ganzoo-style state dict; a file that does
    not fit is one clear line naming what is missing or extra."""
    state = from_torchvision_names(state)
    wide = state.get("mixed3a.b5x5.conv.weight")
    net = InceptionV1(num_classes=state["classifier.weight"].shape[0]
                      if "classifier.weight" in state else 1000,
                      wide_kernel=wide.shape[-1] if wide is not None else 3)
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        raise GanzooError(f"weights {source} do not fit InceptionV1: "
                          + "; ".join(part for part in (_some("missing", missing),
                                                        _some("unexpected", extra)) if part))
    wrong = [k for k in expected if state[k].shape != expected[k].shape]
    if wrong:
        k = wrong[0]
        raise GanzooError(f"weights {source} do not fit InceptionV1: {k} has shape "
                          f"{tuple(state[k].shape)}, expected {tuple(expected[k].shape)}"
                          + (f" ({len(wrong) - 1} more)" if len(wrong) > 1 else ""))
    net.load_state_dict(state)
    return net.eval()


def fetch_imagenet_weights() -> Path:
    """The torchvision GoogLeNet ImageNet weights, downloaded once into
    $GANZOO_HOME/downloads (or put there by hand), sha256-checked."""
    try:
        from ganzoo.data.download import download_file, file_digest
    except ImportError:
        raise GanzooError("this ganzoo cannot download; pass --weights PATH (the torchvision "
                          f"GoogLeNet state dict, {WEIGHTS_URL})")
    try:
        path = download_file(WEIGHTS_URL, Path(WEIGHTS_URL.rsplit("/", 1)[1]),
                             desc="InceptionV1 ImageNet weights")
    except GanzooError as e:
        raise GanzooError(f"{e}; or pass --weights PATH, or --checkpoint RUN to dream with "
                          "a ganzoo run (e.g. after `ganzoo train deepdream --data shapes`)")
    digest = file_digest(path, "sha256")
    if not digest.startswith(WEIGHTS_SHA256_PREFIX):
        path.unlink()
        raise GanzooError(f"{path}: sha256 {digest[:16]}... does not start with "
                          f"{WEIGHTS_SHA256_PREFIX} as the file name promises (a corrupt or "
                          "wrong download); deleted it, run again to retry")
    return path


def _some(what: str, keys: list[str], shown: int = 3) -> str:
    if not keys:
        return ""
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return f"{len(keys)} {what} keys ({', '.join(keys[:shown])}{more})"


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
