"""The cost of --augment per dcgan train step on CPU, as a fraction of a plain step.

Two measures, both recorded in extra_info and not asserted (bench_util.py says why):

* ``step_fraction``: a whole augmented step against a plain step of the same model, timed
  interleaved (ROUNDS rounds, medians) so machine noise hits both alike; on a shared machine
  its noise is several percent;
* ``op_fraction``: the augmentation alone, forward and backward, as a step runs it (reals,
  fakes, G's fakes: three minibatches), over the plain step's median: steadier. ADA is timed at fixed p = 0.5 (bgc), a
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
ROUNDS = small(9, 1)
MODES = {"diffaug": {"augment": "diffaug"},
         "ada-bgc-p0.5": {"augment": "fixed", "augment_p": 0.5},
         "lecam": {"lecam": 0.01}}


def model(**options):
    torch.manual_seed(0)
    return ganzoo.create("dcgan", DataSpec(32, 3), **options)


def timed_augment(arch, reals: torch.Tensor) -> float:
    """Seconds for the augmentation's share of one step: three minibatches through it,
    forward and backward."""
    if arch.small_data is None or arch.small_data.policy.p <= 0:
        return 0.0
    x = reals.clone().requires_grad_(True)
    start = time.perf_counter()
    for _ in range(3):
        arch.small_data.augment(x).sum().backward()
    return time.perf_counter() - start


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
    base, aug, ops = [], [], []
    for _ in range(ROUNDS):
        base.append(timed_steps(plain, reals))
        aug.append(timed_steps(augmented, reals))
        ops.append(timed_augment(augmented, reals))
    benchmark.pedantic(augmented.train_step, args=(reals, None), rounds=1, iterations=1)
    plain_s = statistics.median(base)
    step_fraction = statistics.median(aug) / plain_s - 1
    op_fraction = statistics.median(ops) / plain_s
    benchmark.extra_info.update({"mode": mode, "batch": BATCH, "resolution": 32,
                                 "plain_ms": round(1000 * plain_s, 2),
                                 "augmented_ms": round(1000 * statistics.median(aug), 2),
                                 "augment_op_ms": round(1000 * statistics.median(ops), 2),
                                 "step_fraction": round(step_fraction, 4),
                                 "op_fraction": round(op_fraction, 4),
                                 "threads": torch.get_num_threads()})
    print(f"\n{mode}: plain step {1000 * plain_s:.1f} ms, augmented step "
          f"{1000 * statistics.median(aug):.1f} ms ({100 * step_fraction:+.1f}%), "
          f"augmentation alone {1000 * statistics.median(ops):.1f} ms "
          f"({100 * op_fraction:.1f}% of a plain step)")
