"""Training speed with ``--compile`` against eager, on CPU (inductor's C++ backend).

Two trainers on the same data, one eager and one compiled, trained interleaved (eager,
compiled, eager, ...: medians of the rounds) so machine noise hits both alike; recorded in
extra_info: seconds per step of each, their ratio (eager / compiled: above 1 means the
compiled step is faster) and the compiled trainer's warm-up (its first steps, which compile).
Nothing is asserted: the figures go to benchmarks/RESULTS.md. The GPU figures come from
benchmarks/test_stylegan2_speed.py, which also runs --cuda-graphs.

    python -m pytest benchmarks/test_compile_speed.py -s
"""
from __future__ import annotations

import statistics
import time

import pytest
import torch

from bench_util import small
from ganzoo import make_config
from ganzoo.registry import Registry
from ganzoo.trainer import Trainer, TrainConfig
from ganzoo_plugins.dcgan.model import DCGAN
from ganzoo_plugins.stylegan2_ada.model import StyleGAN2ADA

ROUNDS = small(5, 1)
CASES = {   # name: (architecture, its options, batch, steps per round)
    "dcgan-32": (DCGAN, {}, 64, 4),
    "stylegan2-ada-tiny-32": (StyleGAN2ADA, {"cfg": "tiny"}, 16, 4),
}


def make_trainer(name: str, tmp_path, compile: bool) -> Trainer:
    arch, options, batch, _ = CASES[name]
    torch.manual_seed(0)
    config = TrainConfig(data="shapes", resolution=32, batch=small(batch, 8), kimg=10_000,
                         tick=10_000, snap=10_000, out=str(tmp_path / f"runs-{compile}"),
                         device="cpu", compile=compile)
    return Trainer(arch, make_config(arch, options), config, Registry(), quiet=True)


def train_seconds(trainer: Trainer, steps: int) -> float:
    t0 = time.perf_counter()
    trainer.advance(trainer.progress.images + steps * trainer.config.batch)
    return (time.perf_counter() - t0) / steps


@pytest.mark.parametrize("name", [
    "dcgan-32",
    # Compiling StyleGAN2's networks takes minutes on 2 cores: full runs only.
    pytest.param("stylegan2-ada-tiny-32", marks=pytest.mark.skipif(
        small(False, True), reason="smoke mode: compiling stylegan2 takes minutes")),
])
def test_compiled_vs_eager_step(benchmark, name, tmp_path):
    steps = small(CASES[name][3], 1)
    eager, compiled = make_trainer(name, tmp_path, False), make_trainer(name, tmp_path, True)
    train_seconds(eager, 1)                            # warm-up: allocator, oneDNN
    warmup = train_seconds(compiled, 2) * 2            # the compile happens here
    times = {"eager": [], "compiled": []}
    for _ in range(ROUNDS):
        times["eager"].append(train_seconds(eager, steps))
        times["compiled"].append(train_seconds(compiled, steps))
    benchmark.pedantic(lambda: train_seconds(compiled, 1), rounds=1, iterations=1)
    eager_s, compiled_s = (statistics.median(times[k]) for k in ("eager", "compiled"))
    info = {"case": name, "batch": eager.config.batch, "eager_sec_per_step": round(eager_s, 4),
            "compiled_sec_per_step": round(compiled_s, 4),
            "eager_over_compiled": round(eager_s / compiled_s, 3),
            "compile_warmup_s": round(warmup, 1), "threads": torch.get_num_threads(),
            "torch": torch.__version__}
    benchmark.extra_info.update(info)
    print(f"\n{name}, batch {info['batch']}, {info['threads']} threads: eager "
          f"{eager_s * 1000:.1f} ms/step, compiled {compiled_s * 1000:.1f} ms/step "
          f"(eager/compiled {info['eager_over_compiled']}), compile warm-up {warmup:.0f} s")
