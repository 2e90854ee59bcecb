"""The `domain` feature extractor: a small classifier trained on a labelled data set.

Inception features need 95 MB of ImageNet weights and say little about 32-pixel coloured
shapes; a network trained on the data's own labels gives FID-style numbers offline, in
seconds, that separate good samples from bad ones on that kind of data. Scores on it are
comparable only with scores on the same domain extractor (same data, resolution, seed),
never with published FIDs.

It is trained once per (data, resolution, channels) and cached under
``$GANZOO_HOME/extractors/`` as a plain state dict (loaded with ``weights_only=True``).
"""
from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.atomic import atomic_write
from ganzoo.data.cache import cache_key, ganzoo_home
from ganzoo.data.source import ImageSet, PrepareOptions
from ganzoo.errors import GanzooError
from ganzoo.features import FeatureExtractor

VERSION = 1
MAX_RESOLUTION = 64        # larger images are downsampled: the classifier stays cheap
TRAIN_IMAGES = 10_000      # at most this many images per epoch
EPOCHS = 4
BATCH = 128
WIDTH = 16


class DomainClassifier(FeatureExtractor):
    """Four 3x3 conv-BN-ReLU stages (width w, 2w, 4w, 4w; 2x2 max pool before the 2nd, 3rd
    and 4th), global average pooling (the features: 4w numbers) and a linear classifier."""

    name = "domain"
    feature_dim = 4 * WIDTH
    input_resolution = 32

    def __init__(self, channels: int = 3, num_classes: int = 2, width: int = WIDTH,
                 resolution: int = 32):
        super().__init__()
        self.input_channels = channels
        self.input_resolution = resolution
        self.width = width
        widths = [width, 2 * width, 4 * width, 4 * width]
        self.feature_dim = widths[-1]
        layers: list[nn.Module] = []
        for k, (cin, cout) in enumerate(zip([channels] + widths, widths)):
            if k:
                layers.append(nn.MaxPool2d(2))
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], num_classes)
        self.weights_id = "untrained"
        self.info: dict = {}

    def forward(self, images: Tensor) -> Tensor:
        return self.body(images).mean(dim=(2, 3))

    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.forward(images)
        return feats, self.head(feats)

    def logits(self, images: Tensor) -> Tensor:
        return self.head(self.forward(images))

    @classmethod
    def for_metrics(cls, context) -> "DomainClassifier":
        """``--extractor domain``: trained on the evaluated data's labels;
        ``--extractor domain:SPEC``: trained on SPEC (any labelled ``--data`` spec)."""
        from ganzoo.data import resolve_data
        from ganzoo.metrics.reference import fingerprint
        resolution = min(MAX_RESOLUTION, context.resolution)
        if context.argument:
            data = resolve_data(context.argument, PrepareOptions(resolution, context.channels),
                                context.registry)
            what = context.argument
        else:
            data = context.data
            what = context.data_name
        if data.labels is None or len(data.class_names) < 2:
            raise GanzooError(f"the domain extractor trains a classifier on labels, but "
                              f"{what} has none; pass --extractor domain:SPEC with a labelled "
                              "data set (e.g. domain:shapes)")
        key = cache_key(kind="domain", version=VERSION, width=WIDTH, epochs=EPOCHS,
                        data=fingerprint(data),
                        resolution=resolution, channels=context.channels)
        path = ganzoo_home() / "extractors" / f"domain-{key}.pt"
        net = load_cached(path)
        if net is None:
            context.log(f"training the domain feature extractor on {what} "
                        f"({len(data)} images, {resolution}px); cached in {path}")
            net = train_domain_classifier(data, resolution, context.channels)
            net.info["data"] = what
            save(net, path)
        # The recipe (key) fixes the weights only up to floating-point rounding, which
        # differs between machines and thread counts; the weights' own hash tells them apart.
        net.weights_id = (f"domain({net.info.get('data', what)}, {resolution}px, "
                          f"acc {net.info.get('accuracy', 0):.3f}, {weights_hash(net)})")
        return net.eval().requires_grad_(False)


def _as_float(images: np.ndarray, resolution: int, channels: int) -> Tensor:
    x = torch.from_numpy(images).float().div_(127.5).sub_(1)
    if x.shape[1] != channels:
        x = x.mean(1, keepdim=True) if channels == 1 else x.expand(-1, 3, -1, -1)
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="area")
    return x.contiguous(memory_format=torch.channels_last)


def train_domain_classifier(data: ImageSet, resolution: int, channels: int, seed: int = 0,
                            *, width: int = WIDTH, epochs: int = EPOCHS,
                            batch: int = BATCH) -> DomainClassifier:
    """Fit the classifier to ``data``'s labels (10% held out, at most 1000, to report its
    accuracy). Leaves the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        n = len(data)
        order = torch.randperm(n)
        held = order[:min(1000, n // 10)]
        train = order[len(held):]
        net = DomainClassifier(channels, len(data.class_names), width, resolution)
        net = net.to(memory_format=torch.channels_last)      # faster convolutions on CPU
        labels = torch.from_numpy(np.asarray(data.labels, dtype=np.int64))
        per_epoch = min(TRAIN_IMAGES, len(train))
        steps = epochs * -(-per_epoch // batch)
        opt = torch.optim.Adam(net.parameters(), 2e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 4e-3, total_steps=steps)
        net.train()
        for _ in range(epochs):
            chosen = train[torch.randperm(len(train))[:per_epoch]]
            for idx in chosen.split(batch):
                if len(idx) < 2:
                    continue
                x = _as_float(data.images[idx.numpy()], resolution, channels)
                if torch.rand(()) < 0.5:
                    x = x.flip(3)
                loss = F.cross_entropy(net.logits(x), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        net.eval()
        with torch.no_grad():
            correct = sum(int((net.logits(_as_float(data.images[i.numpy()], resolution,
                                                    channels)).argmax(1) == labels[i]).sum())
                          for i in held.split(256))
    net.info = {"accuracy": correct / max(1, len(held)), "classes": list(data.class_names),
                "images": n, "resolution": resolution, "channels": channels}
    return net


def weights_hash(net: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def save(net: DomainClassifier, path) -> None:
    payload = {"format": "ganzoo-domain-extractor", "version": VERSION,
               "channels": net.input_channels, "width": net.width,
               "num_classes": net.head.out_features,
               "resolution": net.input_resolution, "info": json.dumps(net.info),
               "state": net.state_dict()}
    with atomic_write(path) as f:
        torch.save(payload, f)


def load_cached(path) -> DomainClassifier | None:
    """The cached classifier, or None if there is none (or it is unreadable: retrained)."""
    if not path.exists():
        return None
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
        net = DomainClassifier(d["channels"], d["num_classes"], d["width"], d["resolution"])
        net.load_state_dict(d["state"])
        net.info = json.loads(d["info"])
        return net
    except Exception as e:  # noqa: BLE001 - a bad cache entry is rebuilt, not fatal
        print(f"warning: ignoring unreadable cached extractor {path} ({type(e).__name__})",
              file=sys.stderr)
        return None
