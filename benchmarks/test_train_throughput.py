"""DCGAN train-step throughput (img/s) on CPU: the trainer vs a plain PyTorch loop.

Both drive the same networks and optimisers with the same batch; the plain loop is what a
notebook would write (float data already in memory, no stats, no checkpoints). The trainer's
overhead (data order, uint8 -> float, stats, progress, signal checks) should stay under 5%:
measured interleaved (plain, trainer, plain, ...: 5 rounds, medians), recorded in extra_info,
and a miss is a warning unless GANZOO_BENCH_STRICT=1 (bench_util.py says why).
Run: python -m pytest benchmarks -q  (CI runs it too; results: benchmarks/RESULTS.md).
"""
from __future__ import annotations

import statistics
import time

import pytest
import torch
import torch.nn.functional as F

from ganzoo.registry import Registry
from ganzoo.trainer import Trainer, TrainConfig
from ganzoo_plugins.dcgan.model import DCGAN, DCGANConfig
from bench_util import check_target, small

BATCH = small(64, 16)
STEPS = small({32: 8, 64: 3}, {32: 1, 64: 1})   # train steps per timed round
ROUNDS = small(5, 1)
# The trainer's overhead over the plain loop should stay under this (a target, asserted with
# GANZOO_BENCH_STRICT=1: bench_util.check_target).
MAX_OVERHEAD = 0.05


def make_trainer(resolution: int, tmp_path) -> Trainer:
    config = TrainConfig(data="shapes", resolution=resolution, batch=BATCH, kimg=10_000,
                         tick=1, snap=10_000, out=str(tmp_path / "runs"), device="cpu")
    return Trainer(DCGAN, DCGANConfig(), config, Registry(), quiet=True)


def plain_loop(model: DCGAN, data: torch.Tensor, steps: int) -> None:
    """The loop a notebook would write around the same networks."""
    G, D, opt_g, opt_d = model.G, model.D, model.opt_g, model.opt_d
    for _ in range(steps):
        reals = data[torch.randint(0, len(data), (BATCH,))]
        fakes = G(torch.randn(BATCH, model.config.latent_dim))
        loss_d = F.softplus(-D(reals)).mean() + F.softplus(D(fakes.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-D(fakes)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        loss_d.item(), loss_g.item()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@pytest.mark.parametrize("resolution", [32, 64])
def test_dcgan_trainer_overhead(benchmark, resolution, tmp_path):
    trainer = make_trainer(resolution, tmp_path)
    data = torch.from_numpy(trainer.data.images).float().div_(127.5).sub_(1)
    steps = STEPS[resolution]

    def run_trainer():
        trainer.advance(trainer.progress.images + steps * BATCH)

    def run_plain():
        plain_loop(trainer.arch, data, steps)

    run_trainer(), run_plain()     # warm-up: allocator, oneDNN kernels
    plain, train = [], []
    for _ in range(ROUNDS):        # interleaved, so machine noise hits both alike
        plain.append(timed(run_plain))
        train.append(timed(run_trainer))
    benchmark.pedantic(run_trainer, rounds=1, iterations=1)
    images = steps * BATCH
    plain_ips, train_ips = images / statistics.median(plain), images / statistics.median(train)
    overhead = plain_ips / train_ips - 1
    benchmark.extra_info.update({"resolution": resolution, "batch": BATCH,
                                 "plain_img_per_s": round(plain_ips, 1),
                                 "trainer_img_per_s": round(train_ips, 1),
                                 "overhead_pct": round(100 * overhead, 2),
                                 "threads": torch.get_num_threads()})
    print(f"\n{resolution}px batch {BATCH}: plain {plain_ips:.1f} img/s, trainer "
          f"{train_ips:.1f} img/s, overhead {100 * overhead:+.2f}%")
    check_target(overhead < MAX_OVERHEAD, f"{resolution}px: the trainer's overhead is "
                 f"{100 * overhead:+.2f}% over the plain loop; target < {100 * MAX_OVERHEAD:g}%")
