"""Train-step throughput (real images consumed per second) of wgan-gp and cgan on CPU, at
32x32 and 64x64, with their default (paper) configurations.

wgan-gp counts the n_critic = 5 minibatches a step consumes. Small batches (4 for wgan-gp,
16 for cgan) keep the paper-size networks inside a CI budget on 2 cores; results:
benchmarks/RESULTS.md.
"""
from __future__ import annotations

import pytest
import torch

import ganzoo

BATCH = {"wgan-gp": 4, "cgan": 16}


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("arch", ["wgan-gp", "cgan"])
def test_train_step_throughput(benchmark, arch, resolution):
    torch.manual_seed(0)
    model = ganzoo.create(arch, ganzoo.DataSpec(resolution, 3, 5))
    images = BATCH[arch] * model.batches_per_step
    reals = torch.rand(images, 3, resolution, resolution) * 2 - 1
    labels = torch.arange(images) % 5 if model.conditional else None
    model.train_step(reals, labels)     # warm-up
    benchmark.pedantic(model.train_step, args=(reals, labels), rounds=2, iterations=1)
    img_per_s = images / benchmark.stats.stats.median
    benchmark.extra_info.update({"img_per_s": round(img_per_s, 1), "batch": BATCH[arch],
                                 "images_per_step": images})
    print(f"\n{arch} {resolution}px: {img_per_s:.1f} img/s")
