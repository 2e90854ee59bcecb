"""Train-step throughput (real images consumed per second) of wgan-gp and cgan on CPU, at
32x32 and 64x64, with their default (paper) configurations.

wgan-gp counts the n_critic = 5 minibatches a step consumes. Small batches (4 for wgan-gp,
16 for cgan) keep the paper-size networks inside a CI budget on 2 cores; results:
benchmarks/RESULTS.md. Smoke mode (--benchmark-disable): one step each, narrow networks.
"""
from __future__ import annotations

import pytest
import torch

import ganzoo
import bench_util
from bench_util import median_seconds, small

BATCH = {"wgan-gp": 4, "cgan": 16}
# Smoke mode: narrow networks (the paper-size wgan-gp takes half a minute per step at 64x64).
OPTIONS = small({}, {"wgan-gp": {"dim": 16}, "cgan": {"base_channels": 8, "max_channels": 32}})


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("arch", ["wgan-gp", "cgan"])
def test_train_step_throughput(benchmark, arch, resolution):
    torch.manual_seed(0)
    model = ganzoo.create(arch, ganzoo.DataSpec(resolution, 3, 5), **OPTIONS.get(arch, {}))
    images = BATCH[arch] * model.batches_per_step
    reals = torch.rand(images, 3, resolution, resolution) * 2 - 1
    labels = torch.arange(images) % 5 if model.conditional else None
    if not bench_util.SMOKE:
        model.train_step(reals, labels)     # warm-up
    seconds, _ = median_seconds(benchmark, model.train_step, args=(reals, labels),
                                rounds=small(2, 1))
    img_per_s = images / seconds
    benchmark.extra_info.update({"img_per_s": round(img_per_s, 1), "batch": BATCH[arch],
                                 "images_per_step": images})
    print(f"\n{arch} {resolution}px: {img_per_s:.1f} img/s")
