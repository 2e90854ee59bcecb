"""Custom-op throughput in GB/s (bytes read + written, forward pass) of the native kernels
("cpp" on CPU, "cuda" on GPU) against the pure-PyTorch references ("ref"), and the ratio
native / ref.

CPU test shapes ([8, 64, 32, 32] float32, the [1, 3, 3, 1] filter):
- bias_act: leaky ReLU with bias (reads x, writes y);
- upsample2d x2 ([8, 64, 32, 32] -> [8, 64, 64, 64]) and downsample2d /2 (-> [8, 64, 16, 16]);
each in NCHW and channels-last. GPU shapes (issue 6's: bias_act [32, 512, 64, 64], up x2
[32, 256, 64, 64], down /2 [32, 256, 128, 128], fp16 and fp32, NCHW and channels-last),
skipped without CUDA: each op as "ref" and "cuda", against the ceiling of a device-to-device
copy (x.clone()) of a tensor of the op's input shape, dtype and layout, measured in the same
run (the `copy` entries, run first). Every GPU entry's extra_info holds op, shape, dtype,
layout, impl, bytes, ms, gb_per_s and, beside them, copy_gb_per_s, copy_ms and pct_of_copy
(target for "cuda": 80%; a miss is a TargetMissed warning, an assertion only with
GANZOO_BENCH_STRICT=1), plus the GPU's name and the torch and CUDA versions, so the tables of
benchmarks/RESULTS.md can be written from --benchmark-json; a summary table is printed at the
end. On the GPU each timed round is 10 calls between two synchronisations, so launch and sync
overhead stay out of the per-call time.

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
from bench_util import check_target, median_seconds, small

ROUNDS = small(20, 1)
_medians: dict[tuple, float] = {}   # (case, layout, dtype, device) -> ref median seconds
_copies: dict[tuple, float] = {}    # (shape, layout, dtype) -> device copy median seconds
_summary: list[dict] = []           # GPU entries, printed as a table at the end
COPY_TARGET_PCT = 80                # issue 18: every op at >= 80% of the device copy


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


def _median_of_rounds(fn, x, impl, calls, sync) -> float:
    """Median seconds per call, timed here (for a case whose own entry was deselected)."""
    ts = []
    for i in range(ROUNDS + 3):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(x, impl)
        sync()
        if i >= 3:
            ts.append((time.perf_counter() - t0) / calls)
    return sorted(ts)[len(ts) // 2]


def _copy_seconds(shape, dtype, layout) -> float:
    """The device copy of a tensor of this shape, dtype and layout: from its `copy` entry of
    this run, or timed now the same way."""
    key = (tuple(shape), layout, str(dtype))
    if key not in _copies:
        x, fn, _ = _case("copy", shape, dtype, "cuda")
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        for _ in range(3):
            fn(x, "torch")
        _copies[key] = _median_of_rounds(fn, x, "torch", GPU_CALLS_PER_ROUND,
                                         torch.cuda.synchronize)
    return _copies[key]


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
        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
    if impl == "ref":
        _medians[key] = median
    elif impl != "torch":                  # a native kernel: its speed-up over the reference
        if key not in _medians:        # the ref case was deselected: time it here
            _medians[key] = _median_of_rounds(fn, x, "ref", calls, sync)
        info["speedup_vs_ref"] = round(_medians[key] / median, 2)
    if name == "copy":
        _copies[(tuple(shape), layout, str(dtype))] = median
    if device == "cuda":
        copy = _copy_seconds(shape, dtype, layout)
        copy_bytes = 2 * x.numel() * x.element_size()
        info["copy_shape"] = list(shape)
        info["copy_ms"] = round(copy * 1e3, 3)
        info["copy_gb_per_s"] = round(copy_bytes / copy / 1e9, 2)
        info["pct_of_copy"] = round(100 * info["gb_per_s"] / info["copy_gb_per_s"], 1)
        info["target_pct_of_copy"] = COPY_TARGET_PCT
        _summary.append(info)
    benchmark.extra_info.update(info)
    ratio = f"  {info['speedup_vs_ref']:.1f}x ref" if "speedup_vs_ref" in info else ""
    vs_copy = (f", {info['pct_of_copy']:.0f}% of the copy's {info['copy_gb_per_s']:.0f} GB/s"
               if "pct_of_copy" in info else "")
    print(f"\n{name} {list(shape)} {info['dtype']} {layout} {impl}: {info['ms']:.3f} ms, "
          f"{info['gb_per_s']:.2f} GB/s{ratio}{vs_copy} ({info['threads']} threads)")
    if device == "cuda" and impl == "cuda":
        check_target(info["pct_of_copy"] >= COPY_TARGET_PCT,
                     f"{name} {list(shape)} {info['dtype']} {layout}: {info['gb_per_s']:.0f} "
                     f"GB/s, {info['pct_of_copy']:.0f}% of the device copy "
                     f"({info['copy_gb_per_s']:.0f} GB/s); target {COPY_TARGET_PCT}%")


def _print_summary() -> None:
    print("\n\nop                shape                dtype    layout         impl       ms"
          "     GB/s  copy GB/s  % of copy")
    for i in _summary:
        print(f"{i['op']:<17} {str(i['shape']):<20} {i['dtype']:<8} {i['layout']:<14} "
              f"{i['impl']:<5} {i['ms']:>7.3f} {i['gb_per_s']:>8.0f} {i['copy_gb_per_s']:>10.0f} "
              f"{i['pct_of_copy']:>10.1f}")


@pytest.fixture(scope="module", autouse=True)
def gpu_summary():
    """After the module: the GPU entries as one table (op, dtype, layout, impl, GB/s, copy)."""
    yield
    if _summary:
        _print_summary()


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
GPU_SHAPES = sorted({shape for _, shape in GPU_CASES})
LAYOUTS = ["contiguous", "channels_last"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=["fp16", "fp32"])
@pytest.mark.parametrize("shape", GPU_SHAPES, ids=["x".join(map(str, s)) for s in GPU_SHAPES])
def test_gpu_copy_throughput(benchmark, shape, dtype, layout):
    """The device copy (x.clone()) of each op's input shape: the ceiling of these ops, run
    before them so their entries quote it."""
    _run(benchmark, "copy", shape, dtype, "cuda", "torch", layout)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=["fp16", "fp32"])
@pytest.mark.parametrize("impl", ["ref", "cuda"])
@pytest.mark.parametrize("name,shape", GPU_CASES, ids=[c[0] for c in GPU_CASES])
def test_gpu_op_throughput(benchmark, name, shape, impl, dtype, layout):
    if impl == "cuda":
        build.load(build.CUDA_EXTENSION)
    _run(benchmark, name, shape, dtype, "cuda", impl, layout)
