"""The Inception-v3 network FID is defined on: the 2015-12-05 TensorFlow graph.

FID, KID, IS and precision/recall scores are comparable with published numbers only on this
exact network: the Inception-v3 of Szegedy et al. (2016, "Rethinking the Inception
Architecture") as it was frozen into TensorFlow's ``inception-2015-12-05`` graph, which
differs from later Inception-v3 releases in four places:

- the average pools in the 35x35 and 17x17 blocks and in the first 8x8 block divide by the
  number of real pixels under the window (no zero padding counted);
- the pool branch of the last 8x8 block is a max pool, not an average pool;
- the classifier has 1008 outputs (1000 ImageNet classes and 8 unused ones);
- images enter as uint8 resized to 299x299 (TF1 bilinear) and scaled as ``(x - 128) / 128``.

The module names and tensor shapes follow the widely used PyTorch port of that graph's
weights (``pt_inception-2015-12-05-6726825d.pth``: 94 convolution+BatchNorm units with
BatchNorm eps 1e-3, and ``fc``), so that state dict loads as is. FID features are the 2048
average-pooled channels before the classifier; IS uses the 1008 logits without the fc bias
(``features @ fc.weight.T``), as the original IS code, TTUR, NVlabs and torch-fidelity do.

The network reads the graph's own input: 299x299, already resized and scaled by one of the
preprocessing modes of :mod:`ganzoo.metrics.preprocess` (``takes_fid_mode``), since the
resize and the scale are what differs between the implementations scores are compared with.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.data.download import download_file, file_digest
from ganzoo.errors import GanzooError
from ganzoo.features import FeatureExtractor

WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth")
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
WEIGHTS_SIZE = 95_628_359     # bytes (for the record; the sha256 is what is checked)
WEIGHTS_FILE = "inception/pt_inception-2015-12-05-6726825d.pth"   # under $GANZOO_HOME/downloads


class Unit(nn.Module):
    """Convolution (no bias), BatchNorm (eps 1e-3), ReLU: the graph's building block."""

    def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: Tensor) -> Tensor:
    """3x3 stride-1 average over the pixels that exist (the graph's SAME-padded AvgPool)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class Block35(nn.Module):
    """35x35 block (Mixed_5b/c/d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, cin: int, pool_channels: int):
        super().__init__()
        self.branch1x1 = Unit(cin, 64, 1)
        self.branch5x5_1 = Unit(cin, 48, 1)
        self.branch5x5_2 = Unit(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = Unit(cin, 64, 1)
        self.branch3x3dbl_2 = Unit(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Unit(96, 96, 3, padding=1)
        self.branch_pool = Unit(cin, pool_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool(x))], 1)


class Reduce35(nn.Module):
    """35 -> 17 reduction (Mixed_6a): stride-2 3x3 | 1x1-3x3-stride-2 3x3 | max pool."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = Unit(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = Unit(cin, 64, 1)
        self.branch3x3dbl_2 = Unit(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Unit(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2)], 1)


class Block17(nn.Module):
    """17x17 block (Mixed_6b-e) with factorised 7x7 convolutions (1x7 then 7x1)."""

    def __init__(self, cin: int, c7: int):
        super().__init__()
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        self.branch1x1 = Unit(cin, 192, 1)
        self.branch7x7_1 = Unit(cin, c7, 1)
        self.branch7x7_2 = Unit(c7, c7, **row)
        self.branch7x7_3 = Unit(c7, 192, **col)
        self.branch7x7dbl_1 = Unit(cin, c7, 1)
        self.branch7x7dbl_2 = Unit(c7, c7, **col)
        self.branch7x7dbl_3 = Unit(c7, c7, **row)
        self.branch7x7dbl_4 = Unit(c7, c7, **col)
        self.branch7x7dbl_5 = Unit(c7, 192, **row)
        self.branch_pool = Unit(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for k in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{k}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class Reduce17(nn.Module):
    """17 -> 8 reduction (Mixed_7a)."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = Unit(cin, 192, 1)
        self.branch3x3_2 = Unit(192, 320, 3, stride=2)
        self.branch7x7x3_1 = Unit(cin, 192, 1)
        self.branch7x7x3_2 = Unit(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = Unit(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = Unit(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b7 = x
        for k in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{k}")(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7,
                          F.max_pool2d(x, 3, stride=2)], 1)


class Block8(nn.Module):
    """8x8 block (Mixed_7b/c) with split 1x3 and 3x1 branches. ``max_pool``: the pool branch
    of Mixed_7c in the 2015 graph takes a max, not an average."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = Unit(cin, 320, 1)
        self.branch3x3_1 = Unit(cin, 384, 1)
        self.branch3x3_2a = Unit(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = Unit(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = Unit(cin, 448, 1)
        self.branch3x3dbl_2 = Unit(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = Unit(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = Unit(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = Unit(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x),
                          self.branch3x3_2a(a), self.branch3x3_2b(a),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
                          self.branch_pool(pooled)], 1)


class FIDInceptionV3(FeatureExtractor):
    """Inception-v3, 2015-12-05 graph: 2048-d pool features, 1008 logits (for IS).

    Its input is the graph's input (a preprocessing mode's output), not [-1, 1] images."""

    name = "inception"
    feature_dim = 2048
    input_resolution = 299
    num_logits = 1008
    takes_weights = True          # --feature-weights PATH
    takes_fid_mode = True         # --fid-mode: the caller resizes and scales

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = Unit(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = Unit(32, 32, 3)
        self.Conv2d_2b_3x3 = Unit(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = Unit(64, 80, 1)
        self.Conv2d_4a_3x3 = Unit(80, 192, 3)
        self.Mixed_5b = Block35(192, 32)
        self.Mixed_5c = Block35(256, 64)
        self.Mixed_5d = Block35(288, 64)
        self.Mixed_6a = Reduce35(288)
        self.Mixed_6b = Block17(768, 128)
        self.Mixed_6c = Block17(768, 160)
        self.Mixed_6d = Block17(768, 160)
        self.Mixed_6e = Block17(768, 192)
        self.Mixed_7a = Reduce17(768)
        self.Mixed_7b = Block8(1280, max_pool=False)
        self.Mixed_7c = Block8(2048, max_pool=True)
        self.fc = nn.Linear(2048, self.num_logits)
        #: What the metrics record and key caches by: which weights these are.
        self.weights_id = "random"

    def _pool_features(self, x: Tensor) -> Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
                     "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """2048-d features of the graph's input NCHW (299x299, resized and scaled by a
        preprocessing mode)."""
        return self._pool_features(x)

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Features and the logits IS uses: without the fc bias, as every reference IS
        implementation takes them (the bias only shifts the class prior)."""
        feats = self._pool_features(x)
        return feats, feats @ self.fc.weight.T

    def logits(self, images: Tensor) -> Tensor:
        return self.features_and_logits(images)[1]

    @classmethod
    def for_metrics(cls, context) -> "FIDInceptionV3":
        """The network with the FID weights: ``--feature-weights PATH`` if given, else the
        cached download (fetched and sha256-verified on first use)."""
        path = Path(context.weights) if context.weights else fetch_weights()
        return load_inception(path, verify=not context.weights)


def fetch_weights() -> Path:
    """The weights file, downloaded into $GANZOO_HOME/downloads on first use and verified by
    sha256 (``GANZOO_MIRROR`` applies; a file put there by hand is used offline)."""
    try:
        return download_file(WEIGHTS_URL, Path(WEIGHTS_FILE), sha256=WEIGHTS_SHA256,
                             desc="FID Inception-v3 weights")
    except GanzooError as e:
        # Inception is every metric's default (nn's feature half too), so an offline user
        # meets this first; the domain extractor needs no download.
        raise GanzooError(f"{e}; or pass --feature-weights PATH, or score offline with "
                          "--extractor domain (train: --metrics-extractor domain)") from None


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict saved with torch.save, read without running pickle code."""
    if not path.is_file():
        raise GanzooError(f"--feature-weights {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            raise GanzooError(f"{path}: not a plain state dict (it needs pickle code "
                              "execution to load, which ganzoo refuses for weights)") from None
        raise GanzooError(f"{path}: unreadable as PyTorch weights (corrupt or not a torch "
                          "file)") from None
    except Exception as e:  # noqa: BLE001 - zip errors, truncation, not a torch file...
        raise GanzooError(f"{path}: unreadable as PyTorch weights ({type(e).__name__})") \
            from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise GanzooError(f"{path}: not a state dict of tensors")
    return state


def load_inception(path: Path, *, verify: bool = False) -> FIDInceptionV3:
    """The FID network with the weights in ``path``; any mismatch is one line naming the
    file. ``verify`` also checks the published sha256 (downloads were already checked)."""
    path = Path(path)
    state = read_state_dict(path)
    net = FIDInceptionV3()
    expected = net.state_dict()
    state = dict(state)
    for key in expected:     # files saved before BatchNorm counted batches lack these
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = expected[key]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise GanzooError(f"{path}: not the FID Inception-v3 weights: keys "
                          f"{', '.join(parts)}")
    for key, value in expected.items():
        if state[key].shape != value.shape:
            raise GanzooError(f"{path}: not the FID Inception-v3 weights: {key} has shape "
                              f"{tuple(state[key].shape)}, expected {tuple(value.shape)}")
    net.load_state_dict(state)
    digest = file_digest(path)
    if verify and digest != WEIGHTS_SHA256:
        raise GanzooError(f"{path}: sha256 {digest} is not the FID weights' {WEIGHTS_SHA256}")
    net.weights_id = "pt_inception-2015-12-05" if digest == WEIGHTS_SHA256 else \
        f"{path.name} (sha256 {digest[:12]})"
    return net.eval().requires_grad_(False)


def random_inception(seed: int = 0) -> FIDInceptionV3:
    """Random weights (tests and timing): same shapes and cost, meaningless features."""
    gen = torch.Generator().manual_seed(seed)
    net = FIDInceptionV3()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.01)
    net.weights_id = f"random(seed={seed})"
    return net.eval().requires_grad_(False)
