"""Custom-op throughput in GB/s (bytes read + written, forward pass) of the native kernels
("cpp" on CPU, "cuda" on GPU) against the pure-PyTorch references ("ref"), and the ratio
native / ref.

CPU test shapes ([8, 64, 32, 32] float32, the [1, 3, 3, 1] filter):
- bias_act: leaky ReLU with bias (reads x, writes y);
- upsample2d x2 ([8, 64, 32, 32] -> [8, 64, 64, 64]) and downsample2d /2 (-> [8, 64, 16, 16]);
each in NCHW and channels-last. GPU shapes (issue 6's: bias_act [32, 512, 64, 64], up x2
[32, 256, 64, 64], down /2 [32, 256, 128, 128], fp16 and fp32), skipped without CUDA: each op
as "ref" and "cuda", plus a device copy of the bias_act tensor (x.clone()), the ceiling the
kernels are measured against (target: 80% of it). On the GPU each timed round is 10 calls
between two synchronisations, so launch and sync overhead stay out of the per-call time.

The C++ extension is built (or loaded from $TORCH_EXTENSIONS_DIR / $GANZOO_HOME) before
timing; benchmarks/conftest.py gives each run a fresh GANZOO_HOME, so set TORCH_EXTENSIONS_DIR
to reuse a build. Threads: torch's default (all cores) unless OMP_NUM_THREADS is set; the
count is recorded in each result.

    python -m pytest benchmarks/test_ops_throughput.py -s --benchmark-json=ops.json
    python -m pytest benchmarks/test_ops_throughput.py --benchmark-save=baseline   # .benchmarks/
    python -m pytest benchmarks/test_ops_throughput.py --benchmark-compare=0001 \\
        --benchmark-compare-fail=median:25%

Results: benchmarks/RESULTS.md.
"""
from __future__ import annotations

import time

import pytest
import torch

from ganzoo.ops import bias_act, build, downsample2d, setup_filter, upsample2d
from bench_util import median_seconds, small

ROUNDS = small(20, 1)
_medians: dict[tuple, float] = {}   # (case, layout, dtype, device) -> ref median seconds


def _case(name: str, shape: tuple[int, ...], dtype: torch.dtype, device: str):
    """(function of impl, bytes moved per call) for one op at one shape."""
    x = torch.randn(shape, device=device, dtype=dtype)
    itemsize = x.element_size()
    n = x.numel()
    if name == "copy":
        return x, (lambda x, impl: x.clone()), 2 * n * itemsize
    if name == "bias_act_lrelu":
        b = torch.randn(shape[1], device=device, dtype=dtype)
        return x, (lambda x, impl: bias_act(x, b, act="lrelu", impl=impl)), 2 * n * itemsize
    f = setup_filter([1, 3, 3, 1], device=device)
    if name == "upsample2d_x2":
        return x, (lambda x, impl: upsample2d(x, f, impl=impl)), 5 * n * itemsize
    if name == "downsample2d_x2":
        return x, (lambda x, impl: downsample2d(x, f, impl=impl)), n * itemsize * 5 // 4
    raise ValueError(name)


GPU_CALLS_PER_ROUND = 10


def _run(benchmark, name, shape, dtype, device, impl, layout) -> None:
    x, fn, nbytes = _case(name, shape, dtype, device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    calls = GPU_CALLS_PER_ROUND if device == "cuda" else 1

    def call():
        for _ in range(calls):
            fn(x, impl)
        sync()
    for _ in range(3):
        call()                                   # warm-up (and the kernel's first use)
    median = median_seconds(benchmark, call, rounds=ROUNDS)[0] / calls
    key = (name, layout, str(dtype), device)
    info = {"op": name, "shape": list(shape), "dtype": str(dtype).replace("torch.", ""),
            "layout": layout, "impl": impl, "device": device, "bytes": nbytes,
            "gb_per_s": round(nbytes / median / 1e9, 2), "ms": round(median * 1e3, 3),
            "threads": torch.get_num_threads()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["torch_cuda"] = torch.version.cuda
    if impl == "ref":
        _medians[key] = median
    elif impl != "torch":                  # a native kernel: its speed-up over the reference
        if key not in _medians:        # the ref case was deselected: time it here
            ts = []
            for i in range(ROUNDS + 3):
                t0 = time.perf_counter()
                for _ in range(calls):
                    fn(x, "ref")
                sync()
                if i >= 3:
                    ts.append((time.perf_counter() - t0) / calls)
            _medians[key] = sorted(ts)[len(ts) // 2]
        info["speedup_vs_ref"] = round(_medians[key] / median, 2)
    benchmark.extra_info.update(info)
    ratio = f"  {info['speedup_vs_ref']:.1f}x ref" if "speedup_vs_ref" in info else ""
    print(f"\n{name} {list(shape)} {info['dtype']} {layout} {impl}: {info['ms']:.3f} ms, "
          f"{info['gb_per_s']:.2f} GB/s{ratio} ({info['threads']} threads)")


@pytest.fixture(scope="module")
def cpu_kernels():
    build.load(build.CPU_EXTENSION)


CPU_SHAPE = small((8, 64, 32, 32), (2, 8, 16, 16))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("impl", ["ref", "cpp"])
@pytest.mark.parametrize("name", ["bias_act_lrelu", "upsample2d_x2", "downsample2d_x2"])
def test_cpu_op_throughput(benchmark, cpu_kernels, name, impl, layout):
    _run(benchmark, name, CPU_SHAPE, torch.float32, "cpu", impl, layout)


GPU_CASES = [("bias_act_lrelu", (32, 512, 64, 64)), ("upsample2d_x2", (32, 256, 64, 64)),
             ("downsample2d_x2", (32, 256, 128, 128))]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=["fp16", "fp32"])
@pytest.mark.parametrize("impl", ["ref", "cuda"])
@pytest.mark.parametrize("name,shape", GPU_CASES, ids=[c[0] for c in GPU_CASES])
def test_gpu_op_throughput(benchmark, name, shape, impl, dtype):
    if impl == "cuda":
        build.load(build.CUDA_EXTENSION)
    _run(benchmark, name, shape, dtype, "cuda", impl, "contiguous")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=["fp16", "fp32"])
def test_gpu_copy_throughput(benchmark, dtype):
    """The device copy of the bias_act tensor: the bandwidth ceiling of these ops."""
    _run(benchmark, "copy", GPU_CASES[0][1], dtype, "cuda", "torch", "contiguous")
