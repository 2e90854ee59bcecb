"""Profile StyleGAN2-ADA training minibatches on a GPU: where the time goes, per op.

    python benchmarks/profile_stylegan2.py --impl cuda [--compile] [--cuda-graphs] --out p.txt

Builds the 64x64 `--cfg auto` trainer of benchmarks/test_stylegan2_speed.py, trains 40
minibatches of warm-up (every phase compiled and captured, where asked), then profiles 16
more (one R1 phase, four path-length phases) with torch.profiler. Writes the ops by total GPU
time and by CPU time, with the wall time, the GPU busy time, the kernels run and the host's
launch calls per minibatch (a replayed CUDA graph is one launch for all of its kernels): GPU
busy far below wall time means the step is bound by the host (Python, launches,
synchronisations), not by the kernels.
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
# CUDA runtime/driver calls that start GPU work: a kernel each, or a whole graph.
LAUNCH_CALLS = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchCooperativeKernel",
                "cudaGraphLaunch", "cuGraphLaunch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", default="cuda", choices=["ref", "cuda", "auto"])
    parser.add_argument("--minibatches", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--cuda-graphs", action="store_true")
    args = parser.parse_args()
    os.environ["GANZOO_OPS_IMPL"] = args.impl
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(data="shapes", resolution=args.resolution, batch=BATCH,
                             kimg=10_000, tick=1000, snap=10_000, out=tmp, device="cuda",
                             compile=args.compile, cuda_graphs=args.cuda_graphs)
        trainer = Trainer(StyleGAN2ADA, StyleGAN2ADAConfig(cfg="auto"), config, Registry(),
                          quiet=True)
        trainer.advance(40 * BATCH)
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
    kernels_run = sum(e.count for e in kernels)
    launches = sum(e.count for e in events if e.key.startswith(LAUNCH_CALLS))
    n = args.minibatches
    mode = " + ".join(m for m, on in (("compile", args.compile),
                                      ("cuda-graphs", args.cuda_graphs)) if on) or "eager"
    lines = [f"stylegan2-ada {args.resolution}x{args.resolution} auto, batch {BATCH}, ops "
             f"{args.impl}, {mode}, {torch.cuda.get_device_name()}, torch {torch.__version__}",
             f"{n} minibatches: wall {wall:.3f} s ({wall / n * 1000:.1f} ms each, "
             f"{wall / (n * BATCH / 1000):.2f} sec/kimg under the profiler); GPU busy "
             f"{gpu_us / 1e6:.3f} s ({gpu_us / 1e6 / wall:.0%}); {kernels_run / n:.0f} kernels "
             f"and {launches / n:.0f} host launch calls per minibatch", "",
             events.table(sort_by="self_device_time_total", row_limit=45), "",
             events.table(sort_by="self_cpu_time_total", row_limit=25)]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines[:2]))


if __name__ == "__main__":
    main()
