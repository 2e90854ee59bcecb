"""Reference statistics of a data set: its features on an extractor, cached once.

The cache key is the data's content fingerprint (so the same prepared images give the same
key whatever spec or path named them, and another resolution, channel count, resize filter
or --max-images gives another key), the extractor's identity (name and weights), its
preprocessing mode (``--fid-mode``), the resize filter into the extractor, and how many real
images were used.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import numpy as np

from ganzoo.atomic import atomic_write
from ganzoo.data.cache import cache_key, ganzoo_home
from ganzoo.data.source import ImageSet
from ganzoo.metrics.extract import Extractor, uint8_batches
from ganzoo.metrics.measures import mean_and_cov

VERSION = 2                 # 2: Inception input by preprocessing mode (legacy-tf default)
MAX_REALS = 50_000          # FID compares with every real image, up to this many
FULL_HASH_BYTES = 512 << 20


def fingerprint(data: ImageSet) -> str:
    """A content hash of prepared images and labels (every byte up to 512 MB; beyond that
    a strided sample of about 2,000 images)."""
    h = hashlib.sha256()
    h.update(repr((data.images.shape, data.class_names)).encode())
    images = data.images
    if images.nbytes > FULL_HASH_BYTES:
        images = images[::max(1, len(images) // 2000)]
    h.update(np.ascontiguousarray(images).tobytes())
    if data.labels is not None:
        h.update(np.ascontiguousarray(data.labels).tobytes())
    return h.hexdigest()[:24]


def _mode_text(extractor: Extractor) -> str:
    return f"mode {extractor.fid_mode}, " if extractor.fid_mode else ""


def real_subset(n: int, max_reals: int, seed: int = 0) -> np.ndarray:
    """Indices of the real images used: all, or a seeded random subset of ``max_reals``."""
    if n <= max_reals:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:max_reals])


@dataclass
class Reference:
    """Features of the real images and their Gaussian statistics."""

    features: np.ndarray            # float32 [n, d]
    logits: np.ndarray | None
    mu: np.ndarray
    sigma: np.ndarray
    indices: np.ndarray             # which images of the data set these are
    cached: bool = False

    @property
    def count(self) -> int:
        return len(self.features)


def reference_stats(data: ImageSet, extractor: Extractor, *, max_reals: int = MAX_REALS,
                    log=None) -> Reference:
    """Features of ``data`` on ``extractor``, from the cache or computed once and cached."""
    resize = extractor.resize_description(data.resolution)
    key = cache_key(kind="reference", version=VERSION, data=fingerprint(data),
                    extractor=extractor.identity, fid_mode=extractor.fid_mode, resize=resize,
                    max_reals=max_reals)
    path = ganzoo_home() / "metrics" / f"reference-{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return Reference(z["features"], z["logits"] if "logits" in z.files else None,
                                 z["mu"], z["sigma"], z["indices"], cached=True)
        except Exception:  # noqa: BLE001 - a broken cache entry is recomputed
            pass
    indices = real_subset(len(data), max_reals)
    if log:
        log(f"computing reference features of {data.name} ({len(indices)} images) on "
            f"{extractor.identity}, {_mode_text(extractor)}resize {resize}; cached in {path}")
    t0 = time.monotonic()
    features, logits = extractor.run(uint8_batches(data.images[indices]))
    mu, sigma = mean_and_cov(features)
    arrays = {"features": features.astype(np.float32), "mu": mu, "sigma": sigma,
              "indices": indices,
              "info": np.array(json.dumps({"data": data.name, "extractor": extractor.identity,
                                           "fid_mode": extractor.fid_mode,
                                           "resize": resize, "count": len(indices),
                                           "seconds": time.monotonic() - t0}))}
    if logits is not None:
        arrays["logits"] = logits.astype(np.float32)
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return Reference(arrays["features"], arrays.get("logits"), mu, sigma, indices)
