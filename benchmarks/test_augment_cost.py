"""The cost of --augment per dcgan train step on CPU, as a fraction of a plain step.

Each mode's step (D sees augmented reals and fakes, G's loss and nothing else: dcgan has no
gradient penalty) is timed interleaved with a plain step of the same model (ROUNDS rounds,
medians), so machine noise hits both alike; the fraction (augmented / plain - 1) is recorded
in extra_info, not asserted (bench_util.py says why). ADA is timed at fixed p = 0.5 (bgc), a
mid-run value; at p = 0 it costs nothing.
Run: OMP_NUM_THREADS=1 python -m pytest benchmarks/test_augment_cost.py -q
"""
from __future__ import annotations

import statistics
import time

import pytest
import torch

import ganzoo
from ganzoo import DataSpec
from bench_util import small

BATCH = small(32, 8)          # dcgan's default minibatch
STEPS = small(4, 1)           # train steps per timed round
ROUNDS = small(5, 1)
MODES = {"diffaug": {"augment": "diffaug"},
         "ada-bgc-p0.5": {"augment": "fixed", "augment_p": 0.5},
         "lecam": {"lecam": 0.01}}


def model(**options):
    torch.manual_seed(0)
    return ganzoo.create("dcgan", DataSpec(32, 3), **options)


def timed_steps(arch, reals: torch.Tensor) -> float:
    start = time.perf_counter()
    for _ in range(STEPS):
        arch.train_step(reals, None)
    return (time.perf_counter() - start) / STEPS


@pytest.mark.parametrize("mode", list(MODES))
def test_augment_cost_per_dcgan_step(benchmark, mode):
    plain, augmented = model(), model(**MODES[mode])
    reals = torch.rand(BATCH, 3, 32, 32) * 2 - 1
    timed_steps(plain, reals), timed_steps(augmented, reals)          # warm-up
    base, aug = [], []
    for _ in range(ROUNDS):
        base.append(timed_steps(plain, reals))
        aug.append(timed_steps(augmented, reals))
    benchmark.pedantic(augmented.train_step, args=(reals, None), rounds=1, iterations=1)
    fraction = statistics.median(aug) / statistics.median(base) - 1
    benchmark.extra_info.update({"mode": mode, "batch": BATCH, "resolution": 32,
                                 "plain_ms": round(1000 * statistics.median(base), 2),
                                 "augmented_ms": round(1000 * statistics.median(aug), 2),
                                 "cost_fraction": round(fraction, 4),
                                 "threads": torch.get_num_threads()})
    print(f"\n{mode}: plain {1000 * statistics.median(base):.1f} ms, augmented "
          f"{1000 * statistics.median(aug):.1f} ms per step: +{100 * fraction:.1f}%")
