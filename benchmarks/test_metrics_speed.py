"""Metrics on CPU: feature extraction throughput (images/s) and the time of a 10k-sample FID.

- Inception-v3 (FID network, random weights: the cost does not depend on the values) on
  32x32 uint8 images resized to 299x299, batch 8.
- The domain extractor (untrained: same cost as trained) on 32x32 images, batch 256.
- A 10k-sample FID: (a) the statistics alone (mean and covariance of 10,000 x 2048 features,
  Frechet distance to a 2048-d reference); (b) end to end with the domain extractor:
  10,000 DCGAN samples generated, quantised, featurised, scored. A 10k FID on Inception is
  (10,000 / its img/s) + (a), reported as an estimate rather than run (minutes on 2 cores).
Run: python -m pytest benchmarks/test_metrics_speed.py -q -s (results: RESULTS.md). Smoke mode
(--benchmark-disable): 256 samples, 64 features.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import ganzoo
from ganzoo.metrics.domain import DomainClassifier
from ganzoo.metrics.evaluate import sample_batches
from ganzoo.metrics.extract import Extractor, prepare_net
from ganzoo.metrics.inception import random_inception
from ganzoo.metrics.measures import frechet_distance, mean_and_cov

from bench_util import median_seconds, small

RESULTS: dict[str, float] = {}
SAMPLES = small(10_000, 256)             # smoke mode: a few batches
FEATURES = small(2048, 64)


def _images(n: int, resolution: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, resolution, resolution), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name,batch,rounds", [("inception", 8, 3), ("domain", 256, 5)])
def test_feature_extraction_throughput(benchmark, name, batch, rounds):
    net = random_inception() if name == "inception" else DomainClassifier().eval()
    extractor = Extractor(prepare_net(net), name, "random", True)
    images = _images(batch)
    extractor(images[:2])                       # warm-up: allocator, oneDNN kernels
    seconds, _ = median_seconds(benchmark, extractor, args=(images,), rounds=small(rounds, 1))
    img_per_s = batch / seconds
    RESULTS[name] = img_per_s
    benchmark.extra_info.update({"img_per_s": round(img_per_s, 1), "batch": batch,
                                 "input": f"32px uint8 -> {net.input_resolution}px",
                                 "threads": torch.get_num_threads()})
    print(f"\n{name}: {img_per_s:.1f} img/s (batch {batch}, 32px -> "
          f"{net.input_resolution}px)")


def test_fid_statistics_of_10k_samples(benchmark):
    rng = np.random.default_rng(0)
    fake = np.abs(rng.standard_normal((SAMPLES, FEATURES), dtype=np.float32))
    mu_r, sigma_r = mean_and_cov(np.abs(rng.standard_normal((SAMPLES, FEATURES),
                                                              dtype=np.float32)))

    def fid():
        return frechet_distance(*mean_and_cov(fake), mu_r, sigma_r)
    seconds, _ = median_seconds(benchmark, fid)
    RESULTS["stats"] = seconds
    benchmark.extra_info.update({"seconds": round(seconds, 2),
                                 "features": f"{SAMPLES} x {FEATURES}"})
    print(f"\nFID statistics, {SAMPLES:,} x {FEATURES} features: {seconds:.2f} s")


def test_fid_10k_end_to_end_with_the_domain_extractor(benchmark):
    torch.manual_seed(0)
    model = ganzoo.create("dcgan", ganzoo.DataSpec(32, 3))      # default (paper) config
    extractor = Extractor(prepare_net(DomainClassifier()), "domain", "random", True)
    reference = mean_and_cov(np.abs(np.random.default_rng(0).standard_normal(
        (SAMPLES, extractor.net.feature_dim))))

    def fid_10k():
        feats, _ = extractor.run(sample_batches(model, SAMPLES, seed=0, labels_pool=None))
        return frechet_distance(*mean_and_cov(feats), *reference)
    seconds, _ = median_seconds(benchmark, fid_10k)
    extra = {"seconds": round(seconds, 1)}
    if "inception" in RESULTS and "stats" in RESULTS:
        extra["inception_10k_estimate_s"] = round(SAMPLES / RESULTS["inception"]
                                                  + RESULTS["stats"], 0)
    benchmark.extra_info.update(extra)
    print(f"\n{SAMPLES:,}-sample FID, DCGAN 32px + domain extractor, end to end: {seconds:.1f} s"
          + (f"; on Inception (estimate): {extra['inception_10k_estimate_s']:.0f} s"
             if "inception_10k_estimate_s" in extra else ""))
