"""Profile StyleGAN2-ADA training minibatches on a GPU: where the time goes, per op.

    python benchmarks/profile_stylegan2.py --impl cuda --out prof_cuda.txt

Builds the 64x64 `--cfg auto` trainer of benchmarks/test_stylegan2_speed.py, trains 16
minibatches of warm-up, then profiles 16 more (one R1 phase, four path-length phases) with
torch.profiler. Writes the ops by total GPU time and by CPU time, with the wall time, the GPU
busy time and the number of kernel launches per minibatch: GPU busy far below wall time means
the step is bound by the host (Python, launches, synchronisations), not by the kernels.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from ganzoo.registry import Registry
from ganzoo.trainer import Trainer, TrainConfig
from ganzoo_plugins.stylegan2_ada.config import StyleGAN2ADAConfig
from ganzoo_plugins.stylegan2_ada.model import StyleGAN2ADA

BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", default="cuda", choices=["ref", "cuda", "auto"])
    parser.add_argument("--minibatches", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ["GANZOO_OPS_IMPL"] = args.impl
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(data="shapes", resolution=args.resolution, batch=BATCH,
                             kimg=10_000, tick=1000, snap=10_000, out=tmp, device="cuda")
        trainer = Trainer(StyleGAN2ADA, StyleGAN2ADAConfig(cfg="auto"), config, Registry(),
                          quiet=True)
        trainer.advance(16 * BATCH)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter()
            trainer.advance(trainer.progress.images + args.minibatches * BATCH)
            torch.cuda.synchronize()
            wall = time.perf_counter() - t0
    events = prof.key_averages()
    # Kernel rows only: an op row (e.g. ganzoo_cuda::upfirdn2d) carries its kernels' device
    # time too, so summing every row counts it twice.
    kernels = [e for e in events if str(getattr(e, "device_type", "")).endswith("CUDA")]
    gpu_us = sum(e.self_device_time_total for e in kernels)
    launches = sum(e.count for e in kernels)
    n = args.minibatches
    lines = [f"stylegan2-ada {args.resolution}x{args.resolution} auto, batch {BATCH}, ops "
             f"{args.impl}, {torch.cuda.get_device_name()}, torch {torch.__version__}",
             f"{n} minibatches: wall {wall:.3f} s ({wall / n * 1000:.1f} ms each, "
             f"{wall / (n * BATCH / 1000):.2f} sec/kimg under the profiler); GPU busy "
             f"{gpu_us / 1e6:.3f} s ({gpu_us / 1e6 / wall:.0%}); {launches / n:.0f} kernels "
             "per minibatch", "",
             events.table(sort_by="self_device_time_total", row_limit=45), "",
             events.table(sort_by="self_cpu_time_total", row_limit=25)]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines[:2]))


if __name__ == "__main__":
    main()
