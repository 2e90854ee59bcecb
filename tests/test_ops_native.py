"""Native (C++ CPU) custom ops: really compiled once per session through ninja, then compared
with the pure-PyTorch references (the specification) in values, gradients and double
backward, over activations, clamps, filters, factors, paddings and memory layouts; the build
cache (a second load is a cache hit that runs no compiler; the key follows sources, torch,
CUDA and GPU arch), toolchain errors in one line, impl selection and the wheel's sources.

Set GANZOO_TEST_SKIP_NATIVE=1 to skip the file on a machine without a C++ compiler.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

import ganzoo.ops as ops
from ganzoo.errors import GanzooError
from ganzoo.ops import (ACTIVATIONS, bias_act, build, conv2d_resample, downsample2d, filter2d,
                        modulated_conv2d, select_impl, setup_filter, upfirdn2d, upsample2d)

REPO = Path(__file__).resolve().parents[1]
CPU = build.CPU_EXTENSION

pytestmark = pytest.mark.skipif(os.environ.get("GANZOO_TEST_SKIP_NATIVE") == "1",
                                reason="GANZOO_TEST_SKIP_NATIVE=1")


def close(got, want, dtype=None):
    """fp64: 1e-10; fp32: rtol 1e-5, atol 1e-5 (a few ulp of O(1) values); half/bfloat16:
    stated tolerances of one rounding of the output (the kernels compute in float)."""
    dtype = dtype or want.dtype
    tol = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-5),
           torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1.6e-2)}[dtype]
    torch.testing.assert_close(got, want, rtol=tol[0], atol=tol[1])


def layouts(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same values as contiguous NCHW, channels-last, and a strided (non-dense) view, on
    x's device."""
    wide = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype, device=x.device)
    wide[..., ::2] = x
    return {"contiguous": x.contiguous(),
            "channels_last": x.contiguous(memory_format=torch.channels_last),
            "strided": wide[..., ::2]}


# -- build and cache -------------------------------------------------------------------------

def test_build_compiles_and_records_time(native):
    record = json.loads((native.directory / build.BUILD_RECORD).read_text())
    assert record["seconds"] > 0 and record["parts"]["torch"] == torch.__version__
    assert native.directory.parent == native.root
    assert native.directory.name == f"{CPU.library}-{build.build_key(record['parts'])}"
    assert build.library_file(CPU, native.directory).is_file()
    assert list(native.directory.glob("*.o")), "ninja's object files are kept in the build dir"
    st = build.state(CPU)
    assert st.status == "loaded" and st.build_seconds == record["seconds"]


def test_second_load_in_a_fresh_process_is_a_cache_hit(native, tmp_path):
    """No ninja and no compiler on PATH: the fresh process must load the finished library,
    fast, leaving every build product untouched."""
    products = sorted(native.directory.glob("*.o")) + [build.library_file(CPU, native.directory)]
    before = {p: p.stat().st_mtime_ns for p in products}
    code = ("import time; t = time.perf_counter()\n"
            "from ganzoo.ops import build, bias_act\n"
            "import torch\n"
            "build.load(build.CPU_EXTENSION)\n"
            "st = build.state(build.CPU_EXTENSION)\n"
            "assert st.status == 'loaded' and st.from_cache, st\n"
            "print(time.perf_counter() - t, st.load_seconds)\n"
            "x = torch.randn(2, 3, 4, 4)\n"
            "torch.testing.assert_close(bias_act(x, act='lrelu', impl='cpp'),\n"
            "                           bias_act(x, act='lrelu', impl='ref'))\n")
    empty = tmp_path / "empty-path"
    empty.mkdir()
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(native.root), "PATH": str(empty),
           "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    total, load_seconds = map(float, r.stdout.split())
    assert load_seconds < 2.0
    if native.seconds:
        assert total < native.seconds / 2, (total, native.seconds)
    assert {p: p.stat().st_mtime_ns for p in products} == before
    assert "compiling" not in r.stderr


def test_cache_key_follows_sources_torch_cuda_and_arch(tmp_path, monkeypatch):
    files = []
    for name in ("a.cpp", "a.h"):
        (tmp_path / name).write_text(f"// {name}\n")
        files.append(tmp_path / name)
    base = build.key_parts(CPU, files)
    assert build.build_key(build.key_parts(CPU, files)) == build.build_key(base)  # stable
    (tmp_path / "a.h").write_text("// a.h changed\n")                 # a header counts too
    assert build.build_key(build.key_parts(CPU, files)) != build.build_key(base)
    (tmp_path / "a.h").write_text("// a.h\n")
    assert build.build_key(build.key_parts(CPU, files)) == build.build_key(base)
    assert build.build_key({**base, "torch": "9.9.9"}) != build.build_key(base)
    assert base["cuda"] == "cpu" and base["arch"] is None
    assert base["cpu_capability"] == build.cpu_capability()
    # A CUDA extension's key carries the CUDA version and the GPU architectures.
    cuda_spec = dataclasses.replace(CPU, name="cuda-test", cuda=True, device="cuda")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    k1 = build.key_parts(cuda_spec, files)
    assert k1["cuda"] == "12.8" and k1["arch"] == "8.0;9.0"
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    assert build.build_key(build.key_parts(cuda_spec, files)) != build.build_key(k1)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    assert build.build_key(build.key_parts(cuda_spec, files)) != build.build_key(k1)


def test_build_root_follows_torch_extensions_dir_then_ganzoo_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    assert build.build_root() == tmp_path / "ext"
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    monkeypatch.setenv("GANZOO_HOME", str(tmp_path / "home"))
    assert build.build_root() == tmp_path / "home" / "torch_extensions"


def test_missing_ninja_is_one_readable_line(monkeypatch, tmp_path):
    """PATH without ninja: the toolchain check says so, and building fails before compiling."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    problem = build.toolchain_problem(CPU)
    assert "ninja" in problem and "pip install ninja" in problem and "\n" not in problem
    spec = dataclasses.replace(CPU, name="cpu-noninja", library="ganzoo_noninja_ops")
    with pytest.raises(build.OpBuildError) as e:
        build.load(spec)
    assert "\n" not in str(e.value) and "ninja is not installed" in str(e.value)
    assert isinstance(e.value, GanzooError)
    assert not (tmp_path / "ext").exists() or not list((tmp_path / "ext").rglob("*.o"))


def test_missing_compiler_is_one_readable_line(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-g++")
    problem = build.toolchain_problem(CPU)
    assert "no C++ compiler" in problem and "no-such-compiler-g++" in problem


def test_cuda_toolchain_problems_are_one_line(monkeypatch):
    """No CUDA in torch, or no nvcc: one line naming what is missing (checked before any
    work, on any machine)."""
    from torch.utils import cpp_extension
    spec = build.CUDA_EXTENSION
    monkeypatch.setattr(torch.version, "cuda", None)
    problem = build.toolchain_problem(spec)
    assert "CPU build" in problem and "\n" not in problem
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", None)
    problem = build.toolchain_problem(spec)
    assert "nvcc not found" in problem and "13.0" in problem and "\n" not in problem


@pytest.mark.gpu
def test_cuda_kernels_are_what_auto_runs_on_cuda_tensors(cuda_native, cli, monkeypatch):
    monkeypatch.delenv("GANZOO_OPS_IMPL", raising=False)
    x = torch.randn(2, 3, 4, 4, device="cuda")
    assert select_impl("bias_act", "auto", x) == "cuda"
    assert select_impl("upfirdn2d", "auto", x) == "cuda"
    assert select_impl("upfirdn2d", "auto", x.cpu()) == "cpp"
    r = cli("ops", "check")
    cuda = [line for line in r.out.splitlines() if " cuda " in line]
    assert len(cuda) == 2 and all("ready" in line and "auto uses cuda" in line
                                  for line in cuda), r.out


def test_cli_ops_build_without_ninja_exits_1_with_one_line(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty), "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext")}
    r = subprocess.run([sys.executable, "-m", "ganzoo", "ops", "build"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot build ganzoo's cpu ops: "
                                                   "ninja is not installed"), r.stderr


def test_cli_ops_check_and_build(native, cli, monkeypatch):
    monkeypatch.delenv("GANZOO_OPS_IMPL", raising=False)
    r = cli("ops", "check")
    assert r.code == 0, r.err
    assert str(native.directory) in r.out and "CPU capability" in r.out
    rows = [line for line in r.out.splitlines() if line.startswith(("bias_act", "upfirdn2d"))]
    assert len(rows) == 6
    cpp = [line for line in rows if " cpp " in line]
    assert all("ready" in line and "built" in line and " s" in line for line in cpp), cpp
    assert all("auto uses cpp" in line for line in cpp)
    cuda = [line for line in rows if " cuda " in line]
    if not torch.cuda.is_available():
        assert all("not available" in line for line in cuda), cuda
    r = cli("ops", "build")
    assert r.code == 0 and "up to date" in r.out and str(native.directory) in r.out
    record = json.loads((native.directory / build.BUILD_RECORD).read_text())
    assert f"in {record['seconds']:.1f} s" in r.out


# -- impl selection --------------------------------------------------------------------------

def test_env_ref_forces_the_reference_for_auto(native, monkeypatch):
    monkeypatch.delenv("GANZOO_OPS_IMPL", raising=False)
    x = torch.randn(2, 3, 4, 4)
    assert select_impl("bias_act", "auto", x) == "cpp"
    monkeypatch.setenv("GANZOO_OPS_IMPL", "ref")
    assert select_impl("bias_act", "auto", x) == "ref"
    assert select_impl("upfirdn2d", "auto", x) == "ref"
    calls = []
    real = ops.native_ops
    monkeypatch.setattr(sys.modules["ganzoo.ops.bias_act"], "native_ops",
                        lambda x: calls.append(x) or real(x))
    bias_act(x, torch.zeros(3), act="lrelu")
    assert calls == []                                   # the kernel was not called
    assert select_impl("bias_act", "cpp", x) == "cpp"    # an explicit impl is not overridden
    monkeypatch.setenv("GANZOO_OPS_IMPL", "cpp")
    assert select_impl("bias_act", "auto", x) == "cpp"
    monkeypatch.setenv("GANZOO_OPS_IMPL", "fast")
    with pytest.raises(GanzooError, match="GANZOO_OPS_IMPL"):
        select_impl("bias_act", "auto", x)


def test_auto_falls_back_with_one_warning_that_says_why(monkeypatch, caplog):
    monkeypatch.setattr(build, "loaded", lambda spec: None)

    def fail(spec, build=True, force=False):
        raise ops.build.OpBuildError("cannot build ganzoo's cpu ops: ninja is not installed "
                                     "or not on PATH (pip install ninja)")
    monkeypatch.setattr(build, "load", fail)
    monkeypatch.setattr(ops, "_warned", set())
    x = torch.randn(1, 2, 4, 4)
    with caplog.at_level(logging.WARNING, logger="ganzoo.ops"):
        for _ in range(3):
            torch.testing.assert_close(bias_act(x, act="lrelu"), bias_act(x, act="lrelu",
                                                                         impl="ref"))
            upsample2d(x, setup_filter([1, 3, 3, 1]))
    warnings = [r.getMessage() for r in caplog.records if r.name == "ganzoo.ops"]
    assert len(warnings) == 2, warnings                   # once per op
    assert all("ninja is not installed" in w and "reference" in w for w in warnings)
    assert warnings[0].startswith("bias_act") and warnings[1].startswith("upfirdn2d")


def test_auto_without_build_permission_uses_ref_silently(monkeypatch, caplog, tmp_path):
    monkeypatch.setattr(build, "_loaded", {})        # as if this process had not loaded it
    monkeypatch.setattr(build, "_failed", {})
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))     # nothing built there
    monkeypatch.setenv("GANZOO_OPS_BUILD", "0")
    monkeypatch.setattr(ops, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="ganzoo.ops"):
        assert select_impl("bias_act", "auto", torch.zeros(2)) == "ref"
    assert not caplog.records and not list(tmp_path.iterdir())


def test_impl_errors(native):
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match="impl='cuda' runs on CUDA tensors"):
        bias_act(x, impl="cuda")
    with pytest.raises(ValueError, match="impl='cuda' runs on CUDA tensors"):
        upfirdn2d(x, None, impl="cuda")
    with pytest.raises(ValueError, match="unknown impl"):
        bias_act(x, impl="triton")
    with pytest.raises(ValueError, match="CPU tensors"):
        bias_act(x.to("meta"), impl="cpp")
    with pytest.raises(ValueError, match="float16/bfloat16/float32/float64"):
        bias_act(x.to(torch.int32), impl="cpp")
    f = setup_filter([1, 2, 1]).requires_grad_()
    with pytest.raises(ValueError, match="filter"):
        upfirdn2d(x, f, impl="cpp")
    # auto: a filter that needs a gradient runs the reference, which provides it
    upfirdn2d(x, f).sum().backward()
    assert f.grad is not None
    # Non-native dtypes and devices run the reference under auto.
    assert select_impl("bias_act", "auto", x.to(torch.int32)) == "ref"
    assert select_impl("bias_act", "auto", x.to("meta")) == "ref"


# -- kernels against the reference, on each device ------------------------------------------
#
# Every comparison runs for the C++ CPU kernels ("cpp") and the CUDA kernels ("cuda"; skipped
# without a GPU). The reference always runs on the CPU, in the tested dtype or in float64, so
# no TF32 convolution on the GPU blurs the comparison; kernel results are brought back to it.

@dataclasses.dataclass
class Backend:
    impl: str          # "cpp" | "cuda"
    device: str        # where the kernel's tensors live

    def put(self, t):
        return None if t is None else t.to(self.device)


@pytest.fixture(scope="session")
def cuda_native(native):
    """The CUDA extension, compiled once per session into the same TORCH_EXTENSIONS_DIR."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    t0 = time.perf_counter()
    build.load(build.CUDA_EXTENSION, build=True)
    return time.perf_counter() - t0


@pytest.fixture(params=["cpp", pytest.param("cuda", marks=pytest.mark.gpu)])
def backend(request, native) -> Backend:
    if request.param == "cuda":
        request.getfixturevalue("cuda_native")
        return Backend("cuda", "cuda")
    return Backend("cpp", "cpu")


# -- bias_act: values, gradients, double backward --------------------------------------------

@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("clamp", [None, 0.8])
def test_bias_act_values_match_reference(backend, act, clamp):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64) * 3
    x[0, 0, 0, :4] = torch.tensor([0.0, 25.0, -25.0, -0.0])   # kinks and softplus' threshold
    b = torch.randn(5, dtype=torch.float64)
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        xd, bd = x.to(dtype), b.to(dtype)
        want = bias_act(xd.double(), bd.double(), act=act, clamp=clamp, impl="ref").to(dtype)
        if dtype in (torch.float64, torch.float32):
            want = bias_act(xd, bd, act=act, clamp=clamp, impl="ref")
        for name, xl in layouts(backend.put(xd)).items():
            got = bias_act(xl, backend.put(bd), act=act, clamp=clamp, impl=backend.impl)
            assert got.dtype == dtype and got.shape == x.shape
            assert got.device.type == backend.device
            close(got.cpu(), want, dtype)
            if name == "channels_last":
                assert got.is_contiguous(memory_format=torch.channels_last)
    # Other axes, shapes and parameters, float32; sizes that leave a partial 16-byte pack.
    x32 = x.float()
    kw = dict(act=act, alpha=0.3, gain=0.7, clamp=clamp)
    for args in [(x32, torch.randn(7), -1), (x32[0, 0], torch.randn(6), 0),
                 (x32.reshape(10, 42), torch.randn(42), 1), (x32, None, 1),
                 (x32.permute(0, 2, 3, 1), torch.randn(5), 3), (x32[:, :1], torch.randn(1), 1),
                 (x32.reshape(-1)[:401].reshape(401, 1), torch.randn(1), 1),
                 (x32.reshape(-1)[1:], None, 0)]:
        xi, bi, dim = args
        close(bias_act(backend.put(xi), backend.put(bi), dim=dim, impl=backend.impl,
                       **kw).cpu(),
              bias_act(xi, bi, dim=dim, impl="ref", **kw))


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_bias_act_gradients_and_double_backward_match_reference_fp32(backend, act):
    """First and second order gradients (as R1 through a network needs) at fp32, all three
    layouts, with and without clamp."""
    torch.manual_seed(1)
    x0 = torch.randn(2, 4, 5, 3) * 2
    b0 = torch.randn(4)
    w0 = torch.randn(2, 4, 5, 3)
    for clamp in (None, 1.0):
        results = {}
        for impl, device in (("ref", "cpu"), (backend.impl, backend.device)):
            w = w0.to(device)
            for name, xl in layouts(x0.to(device)).items():
                x = xl.detach().requires_grad_()
                b = b0.to(device).requires_grad_()
                wi = w.clone().requires_grad_()
                y = bias_act(x, b, act=act, clamp=clamp, impl=impl)
                gx, gb = torch.autograd.grad((y * wi).sum(), (x, b), create_graph=True)
                # Second order: a function of the first-order gradients, differentiated with
                # respect to x, b and the incoming gradient wi.
                s2 = (gx * w).square().sum() + gb.square().sum()
                grads = torch.autograd.grad(s2, (x, b, wi), allow_unused=True)
                grads = [torch.zeros_like(t) if g is None else g for g, t in
                         zip(grads, (x, b, wi))]
                results[impl, name] = [t.cpu() for t in (y, gx, gb, *grads)]
        for name in layouts(x0):
            for got, want in zip(results[backend.impl, name], results["ref", name]):
                close(got, want)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_bias_act_gradcheck_and_gradgradcheck(backend, act):
    torch.manual_seed(0)
    # Away from the kinks (0 and the clamp bounds) so finite differences stay on one side.
    sign = torch.where(torch.rand(2, 3, 2) < 0.5, -1.0, 1.0).double()
    x = ((torch.rand(2, 3, 2, dtype=torch.float64) + 0.1) * sign)
    x = x.to(backend.device).requires_grad_()
    b = (torch.randn(3, dtype=torch.float64) * 0.01).to(backend.device).requires_grad_()
    for clamp in (None, 0.5):
        fn = lambda x, b: bias_act(x, b, act=act, clamp=clamp, gain=1.3,  # noqa: E731
                                   impl=backend.impl)
        assert torch.autograd.gradcheck(fn, (x, b))
        assert torch.autograd.gradgradcheck(fn, (x, b))


def test_bias_act_third_order_is_refused(backend):
    x = torch.randn(5, dtype=torch.float64, device=backend.device, requires_grad=True)
    y = bias_act(x, act="tanh", impl=backend.impl)
    g, = torch.autograd.grad(y.sum(), x, create_graph=True)
    gg, = torch.autograd.grad(g.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="second order"):
        torch.autograd.grad(gg.sum(), x)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_cuda_bias_act_at_benchmark_size_writes_every_element(cuda_native, dtype):
    """A tensor of 8.4M elements (many blocks per multiprocessor, the grid-stride loop) with a
    poisoned output buffer: every element must be written, channels-last too."""
    torch.manual_seed(0)
    x = torch.randn(8, 256, 64, 64, dtype=dtype)
    b = torch.randn(256, dtype=dtype)
    want = bias_act(x.double(), b.double(), act="lrelu", clamp=256, impl="ref").to(dtype)
    for xl in (x.cuda(), x.cuda().contiguous(memory_format=torch.channels_last)):
        torch.cuda.empty_cache()
        torch.full((x.numel() * 2,), float("nan"), dtype=dtype, device="cuda")  # poison
        got = bias_act(xl, b.cuda(), act="lrelu", clamp=256, impl="cuda")
        assert not got.isnan().any()
        close(got.cpu(), want, dtype)


# -- upfirdn2d -------------------------------------------------------------------------------

FILTERS = {
    "2d_even_1331": lambda: setup_filter([1, 3, 3, 1]),                       # 4x4
    "2d_odd_asym": lambda: torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]),  # 2x3
    "2d_3x3": lambda: setup_filter([1, 2, 1]),
    "sep_even": lambda: setup_filter([1, 2, -0.5, 0.25], separable=True),
    "sep_odd": lambda: setup_filter([1, 3, 5, 3, 1], separable=True),
    "identity": lambda: None,
}
GEOMETRIES = [  # up, down, padding (x0, x1, y0, y1)
    (1, 1, (0, 0, 0, 0)),
    (1, 1, (-2, 3, 1, -1)),
    (2, 1, (2, 1, 2, 1)),
    (1, 2, (1, 1, 1, 1)),
    (4, 1, (3, 2, 4, 1)),
    (1, 4, (0, 1, 2, 3)),
    ((2, 1), (1, 2), (3, 0, 1, 2)),
    (2, 2, (-1, 2, 1, -2)),
    ((4, 2), (2, 4), (1, -1, 0, 2)),
]


def _fits(x, f, up, down, pad):
    ux, uy = (up, up) if isinstance(up, int) else up
    fw, fh = (1, 1) if f is None else ((f.shape[0],) * 2 if f.ndim == 1 else (f.shape[1],
                                                                              f.shape[0]))
    return (x.shape[3] * ux + pad[0] + pad[1] >= fw and x.shape[2] * uy + pad[2] + pad[3] >= fh)


@pytest.mark.parametrize("fname", sorted(FILTERS))
def test_upfirdn2d_values_match_reference(backend, fname):
    torch.manual_seed(0)
    f = FILTERS[fname]()
    x64 = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    checked = 0
    for up, down, pad in GEOMETRIES:
        if not _fits(x64, f, up, down, pad):
            continue
        for flip in (False, True):
            kw = dict(up=up, down=down, padding=pad, flip_filter=flip, gain=1.5)
            for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
                x = x64.to(dtype)
                if dtype in (torch.float64, torch.float32):
                    want = upfirdn2d(x, f, impl="ref", **kw)
                else:  # the kernel filters with f.to(dtype), as the reference does
                    fd = None if f is None else f.to(dtype).double()
                    want = upfirdn2d(x.double(), fd, impl="ref", **kw).to(dtype)
                for name, xl in layouts(backend.put(x)).items():
                    got = upfirdn2d(xl, backend.put(f), impl=backend.impl, **kw)
                    assert got.shape == want.shape and got.dtype == dtype
                    close(got.cpu(), want, dtype)
                    if name == "channels_last" and got.shape[1] > 1:
                        assert got.is_contiguous(memory_format=torch.channels_last)
                    checked += 1
    assert checked >= 40


def test_upfirdn2d_random_geometries_match_reference(backend):
    """Random sizes, factors 1-4 per axis, paddings (negative too) and filter shapes."""
    gen = torch.Generator().manual_seed(3)
    rand = lambda lo, hi: int(torch.randint(lo, hi + 1, (), generator=gen))  # noqa: E731
    put = backend.put
    checked = 0
    while checked < 150:
        H, W = rand(1, 9), rand(1, 9)
        up, down = (rand(1, 4), rand(1, 4)), (rand(1, 4), rand(1, 4))
        if rand(0, 1):
            f = torch.randn(rand(1, 6), rand(1, 6), dtype=torch.float64, generator=gen)
        else:
            f = torch.randn(rand(1, 6), dtype=torch.float64, generator=gen)
        pad = tuple(rand(-3, 6) for _ in range(4))
        x = torch.randn(2, 3, H, W, dtype=torch.float64, generator=gen)
        # (the reference's F.pad cannot crop more than the image on one side)
        if not _fits(x, f, up, down, pad) or min(pad[:2]) < -W * up[0] or \
                min(pad[2:]) < -H * up[1]:
            continue
        kw = dict(up=up, down=down, padding=pad, flip_filter=bool(rand(0, 1)), gain=1.7)
        want = upfirdn2d(x, f, impl="ref", **kw)
        for xl in layouts(put(x)).values():
            got = upfirdn2d(xl, put(f), impl=backend.impl, **kw)
            assert got.shape == want.shape, kw
            close(got.cpu(), want)
        # The gradient (an upfirdn2d with swapped geometry) at the same random geometry.
        w = torch.randn(want.shape, dtype=torch.float64, generator=gen)
        grads = []
        for impl, device in (("ref", "cpu"), (backend.impl, backend.device)):
            xi = x.to(device).requires_grad_()
            y = upfirdn2d(xi, f.to(device), impl=impl, **kw)
            grads.append(torch.autograd.grad((y * w.to(device)).sum(), xi)[0].cpu())
        close(grads[1], grads[0])
        checked += 1


@pytest.mark.parametrize("fname", ["2d_even_1331", "2d_odd_asym", "sep_odd"])
def test_upfirdn2d_gradients_match_reference_fp32(backend, fname):
    """First and second order gradients at fp32 over the geometries and layouts."""
    torch.manual_seed(2)
    f = FILTERS[fname]()
    x0 = torch.randn(2, 2, 6, 5)
    for up, down, pad in GEOMETRIES:
        if not _fits(x0, f, up, down, pad):
            continue
        kw = dict(up=up, down=down, padding=pad, flip_filter=fname == "sep_odd", gain=0.7)
        w = None
        for name in layouts(x0):
            res = {}
            for impl, device in (("ref", "cpu"), (backend.impl, backend.device)):
                x = layouts(x0.to(device))[name].detach().requires_grad_()
                y = upfirdn2d(x, f.to(device), impl=impl, **kw)
                if w is None:
                    w = torch.randn(y.shape)
                wi = w.to(device).requires_grad_()
                # The op is linear: its double backward is the backward's gradient with
                # respect to the incoming gradient (as in R1: |d D / d x|^2 back to D).
                g, = torch.autograd.grad((y * wi).sum(), x, create_graph=True)
                gg, = torch.autograd.grad((g * g).sum(), wi)
                res[impl] = [t.cpu() for t in (y, g, gg)]
            for got, want in zip(res[backend.impl], res["ref"]):
                close(got, want)


@pytest.mark.parametrize("up,down,pad", [(2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                         ((2, 1), (1, 2), (3, 0, 1, -1)),
                                         (1, 4, (0, 1, 2, 3)), (4, 2, (1, 2, 0, 1))])
@pytest.mark.parametrize("fname", ["2d_odd_asym", "sep_even"])
def test_upfirdn2d_gradcheck_and_gradgradcheck(backend, up, down, pad, fname):
    f = FILTERS[fname]().double().to(backend.device)
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, device=backend.device, requires_grad=True)
    fn = lambda x: upfirdn2d(x, f, up=up, down=down, padding=pad, gain=1.3,  # noqa: E731
                             impl=backend.impl)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", ["up2", "down2", "filter", "up2_8x8_planes"])
def test_cuda_upfirdn2d_at_network_sizes(cuda_native, case, dtype):
    """The resampling of the style-based networks at real sizes (tiles of 64 outputs, several
    small planes per block, grids of many tiles), channels-last too."""
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1])
    shape, fn = {"up2": ((4, 32, 64, 64), upsample2d), "down2": ((4, 32, 128, 96), downsample2d),
                 "filter": ((2, 16, 100, 70), filter2d),
                 "up2_8x8_planes": ((8, 512, 8, 8), upsample2d)}[case]
    x = torch.randn(shape, dtype=dtype)
    want = fn(x.double(), f.to(dtype).double(), impl="ref").to(dtype)
    for xl in (x.cuda(), x.cuda().contiguous(memory_format=torch.channels_last)):
        got = fn(xl, f.cuda(), impl="cuda")
        close(got.cpu(), want, dtype)
        assert got.is_contiguous(memory_format=torch.channels_last) == (not xl.is_contiguous())


# Paddings of the NHWC kernel's geometries (up, down, (x0, x1, y0, y1)): even and odd (the
# two tap phases of up 2), negative (crops) and lopsided.
NHWC_GEOMETRIES = {
    "up2": [(2, 1, (2, 1, 2, 1)), (2, 1, (1, 2, 3, 0)), (2, 1, (-1, 3, 0, -2))],
    "down2": [(1, 2, (1, 1, 1, 1)), (1, 2, (2, 0, -1, 3))],
    "filter": [(1, 1, (2, 1, 2, 1)), (1, 1, (0, -1, 3, 1))],
}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=["fp16", "fp32"])
@pytest.mark.parametrize("case", sorted(NHWC_GEOMETRIES))
def test_cuda_upfirdn2d_channels_last_matches_reference_and_nchw_kernel(cuda_native, case,
                                                                          dtype):
    """The channels-last (NHWC) kernel: channels-last in and out, the reference's values and
    the NCHW kernel's, for C of each access width (16-byte packs: C = 8, 40 in fp16, 8, 12, 40
    in fp32; pairs: 2, 6, 12 in fp16, 2, 6 in fp32; single channels: odd C 3, 13), both tap
    phases and odd sizes (partial tiles), an input 1 element off alignment (single channels
    whatever C is), gain and flip, each into a NaN-poisoned output buffer."""
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1])
    fd = f.to(dtype).double()           # the kernel filters with f.to(dtype), as the reference
    checked = 0
    for C in (2, 3, 6, 8, 12, 13, 40):
        for up, down, pad in NHWC_GEOMETRIES[case]:
            for flip, gain in ((False, 1.0), (True, 1.7)):
                kw = dict(up=up, down=down, padding=pad, flip_filter=flip, gain=gain)
                x = torch.randn(2, C, 7, 9, dtype=dtype)
                want = upfirdn2d(x.double(), fd, impl="ref", **kw).to(dtype)
                nchw = upfirdn2d(x.cuda(), f.cuda(), impl="cuda", **kw)
                buf = torch.empty(x.numel() + 1, dtype=dtype, device="cuda")
                off = buf[1:].view(2, 7, 9, C).permute(0, 3, 1, 2)      # misaligned NHWC
                off.copy_(x)
                for xl in (x.cuda().contiguous(memory_format=torch.channels_last), off):
                    assert xl.is_contiguous(memory_format=torch.channels_last)
                    assert not xl.is_contiguous()
                    torch.full((want.numel() * 2,), float("nan"), dtype=dtype, device="cuda")
                    got = upfirdn2d(xl, f.cuda(), impl="cuda", **kw)
                    assert got.shape == want.shape and got.dtype == dtype
                    assert got.is_contiguous(memory_format=torch.channels_last)
                    assert not got.isnan().any()
                    close(got.cpu(), want, dtype)
                    close(got, nchw, dtype)
                    checked += 1
    assert checked == 7 * len(NHWC_GEOMETRIES[case]) * 2 * 2


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=["fp16", "fp32"])
@pytest.mark.parametrize("case", ["up2", "down2", "filter"])
def test_upfirdn2d_channels_last_gradients_stay_channels_last(backend, case, dtype):
    """A channels-last input gets a channels-last output and gradient (the backward is an
    upfirdn2d, handed dy in channels-last) whatever the layout of the incoming gradient
    (channels-last, NCHW, or y.sum()'s broadcast one); first and second order equal the float64
    reference's (fp16: within a few roundings) and the NCHW path's."""
    torch.manual_seed(1)
    f = setup_filter([1, 3, 3, 1])
    fn = {"up2": upsample2d, "down2": downsample2d, "filter": filter2d}[case]
    x0 = torch.randn(2, 6, 7, 8, dtype=dtype)
    w0 = torch.randn(fn(x0.double(), f.double(), impl="ref").shape, dtype=dtype)

    def run(impl, device, dt, x_cl, w_cl):
        """y, dL/dx, the second order d|dL/dx|^2/dw, d(y.sum())/dx; L = sum(y * w)."""
        def put(t, cl):
            t = t.to(device, dt)
            return t.contiguous(memory_format=torch.channels_last if cl else
                                torch.contiguous_format).requires_grad_()
        x, w = put(x0, x_cl), put(w0, w_cl)
        y = fn(x, f.to(dtype).to(device, dt), impl=impl)
        g, = torch.autograd.grad((y * w).sum(), x, create_graph=True)
        gg, = torch.autograd.grad((g * g).sum(), w)
        g1, = torch.autograd.grad(y.sum(), x)
        return y, g, gg, g1

    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)
    want = run("ref", "cpu", torch.float64, False, False)
    nchw = run(backend.impl, backend.device, dtype, False, False)
    for w_cl in (True, False):
        got = run(backend.impl, backend.device, dtype, True, w_cl)
        y, g, _, g1 = got
        for t in (y, g, g1):
            assert t.is_contiguous(memory_format=torch.channels_last), w_cl
        for a, b, c in zip(got, want, nchw):
            torch.testing.assert_close(a.cpu().double(), b, **tol)
            close(a, c, dtype)


def test_resampling_helpers_and_conv_run_the_kernel_under_auto(backend, monkeypatch):
    calls = []
    U = sys.modules["ganzoo.ops.upfirdn2d"]
    real = U._run_kernel
    monkeypatch.setattr(U, "_run_kernel", lambda *a: calls.append(1) or real(*a))
    monkeypatch.delenv("GANZOO_OPS_IMPL", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)   # exact convs on the GPU
    torch.manual_seed(0)
    put = backend.put
    f = put(setup_filter([1, 3, 3, 1]))
    x = put(torch.randn(2, 4, 8, 8))
    w = put(torch.randn(3, 4, 3, 3))
    styles = put(torch.rand(2, 4) + 0.5)
    for fn in (lambda i: upsample2d(x, f, impl=i), lambda i: downsample2d(x, f, impl=i),
               lambda i: filter2d(x, f, impl=i),
               lambda i: conv2d_resample(x, w, f, up=2, padding=1, impl=i),
               lambda i: conv2d_resample(x, w, f, down=2, padding=1, impl=i),
               lambda i: modulated_conv2d(x, w, styles, up=2, resample_filter=f, impl=i)):
        n = len(calls)
        close(fn("auto").cpu(), fn("ref").cpu())
        assert len(calls) > n


# -- packaging -------------------------------------------------------------------------------

def test_wheel_carries_the_native_sources(tmp_path):
    """`pip wheel .` (here of a copy of the project, so the checkout stays clean) ships
    third_party/ as the package ganzoo_third_party, with every source the build reads."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")
    for name in ("ganzoo", "plugins", "third_party"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                        "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    wheel, = (tmp_path / "dist").glob("ganzoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = {f"ganzoo_third_party/{p.relative_to(REPO / 'third_party').as_posix()}"
              for p in build.source_files(CPU)}
    assert needed and needed <= names, needed - names
    assert {"ganzoo/ops/build.py", "ganzoo_third_party/__init__.py"} <= names
