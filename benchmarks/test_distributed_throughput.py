"""DCGAN training img/s in 1 process vs 2 data-parallel CPU processes (gloo), same global batch.

Both use the machine's cores: one process with OMP_NUM_THREADS=2, or two with one thread each.
On 2 cores no speed-up is expected; the point is that data-parallel training works and costs
little (gradient all-reduce, synced BatchNorm and the per-step agreement on stats and stop
requests). img/s comes from the runs' own stats.jsonl, after a warm-up tick, so process start
and the first slow steps do not count. Results: benchmarks/RESULTS.md.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


from bench_util import check_target, small

BATCH = small(64, 16)
TICK_KIMG = small(0.256, 0.032)   # 4 minibatches per stats line (smoke mode: 2)
KIMG = 4 * TICK_KIMG              # 4 ticks: the first is warm-up
# Two processes should not fall below this fraction of one process's img/s (a target:
# bench_util.check_target).
MIN_RATIO = 0.5


def train(processes: int, cwd: Path) -> float:
    """img/s of a DCGAN run on shapes 32x32 (default widths), after the first tick."""
    threads = str(max(1, (os.cpu_count() or 2) // processes))
    command = [sys.executable, "-m", "ganzoo", "train", "dcgan", "--data", "shapes",
               "--resolution", "32", "--batch", str(BATCH), "--kimg", f"{KIMG:g}", "--tick",
               str(TICK_KIMG), "--snap", str(KIMG), "--device", "cpu", "-q"]
    if processes > 1:
        command += ["--gpus", str(processes)]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": threads})
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = list((cwd / "runs").iterdir())
    ticks = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    seconds = sum(t["sec_per_kimg"] for t in ticks[1:]) * TICK_KIMG
    return len(ticks[1:]) * TICK_KIMG * 1000 / seconds


def test_one_vs_two_cpu_processes(benchmark, tmp_path):
    rates = {}

    def both():
        for n in (1, 2):
            (tmp_path / f"p{n}").mkdir(exist_ok=True)
            rates[n] = train(n, tmp_path / f"p{n}")

    benchmark.pedantic(both, rounds=1, iterations=1)
    ratio = rates[2] / rates[1]
    benchmark.extra_info.update({"img_per_s_1_process": round(rates[1], 1),
                                 "img_per_s_2_processes": round(rates[2], 1),
                                 "ratio": round(ratio, 3)})
    print(f"\nDCGAN 32x32, global batch {BATCH}: 1 process {rates[1]:.1f} img/s, "
          f"2 processes {rates[2]:.1f} img/s, ratio {ratio:.2f}")
    check_target(ratio >= MIN_RATIO, f"2 processes trained at {ratio:.2f}x one process's "
                 f"img/s; target >= {MIN_RATIO}")
