"""Custom ops of the style-based networks: pure-PyTorch references and native kernels.

The reference implementations are the specification: a native kernel must match them (values
and gradients, double backward included). Every op takes ``impl``:

- ``"auto"`` (default): the native kernel for the tensor's device when it is available, else
  the reference, with one logged warning per op and process saying why (e.g. "ninja is not
  installed"). The native kernels are C++ CPU kernels and CUDA kernels of ``bias_act`` and
  ``upfirdn2d`` (and so of ``upsample2d``, ``downsample2d``, ``filter2d`` and the resampling
  inside ``conv2d_resample`` / ``modulated_conv2d``), in two extensions (third_party/cpu/ and
  third_party/cuda/), each built on first use.
- ``"ref"``: the reference, built from public torch ops only, so it runs on every device and
  is differentiable twice by plain autograd.
- ``"cpp"``: the C++ CPU kernel, built now if needed; any problem raises
  :class:`~ganzoo.ops.build.OpBuildError` (a :class:`~ganzoo.errors.GanzooError`).
- ``"cuda"``: the CUDA kernel (CUDA tensors only), built now if needed; any problem (a CPU
  build of torch, no nvcc, a compile error) raises :class:`~ganzoo.ops.build.OpBuildError`.

Environment:

- ``GANZOO_OPS_IMPL=ref`` makes every ``"auto"`` call use the reference (a global escape hatch
  for users and tests); ``GANZOO_OPS_IMPL=cpp`` (or ``cuda``) makes them require the C++ (or
  CUDA) kernels. An explicit ``impl=`` argument other than ``"auto"`` is not overridden.
- ``GANZOO_OPS_BUILD=0``: ``"auto"`` uses the C++ kernels only if they are already built (in
  the cache, or loaded by this process) and never compiles. Default ``1``: the first ``"auto"``
  call on a CPU (CUDA) tensor compiles the CPU (CUDA) kernels: about a minute on 2 cores, a
  minute or two with nvcc, once per source, torch version and (CUDA) GPU architecture; see
  :mod:`ganzoo.ops.build`.

Why ``"auto"`` compiles on first use by default: a CPU user of ``ganzoo train stylegan2-ada``
gets the faster kernels without knowing about them, for a one-time wait announced by a log
line (what the official StyleGAN2-ADA does for its CUDA ops). The test suite sets
``GANZOO_OPS_BUILD=0`` instead (tests/conftest.py), so no test is slowed by a surprise build:
tests/test_ops_native.py builds the extension once per session, on purpose, and tests after it
in the same session run ``"auto"`` on the C++ kernels (which equal the reference within fp32
rounding). Users can build ahead of time with ``ganzoo ops build`` and inspect the state with
``ganzoo ops check``. A failed build is recorded in the cache and not retried by "auto" (so a
broken toolchain costs one warning per process, not a compile); ``ganzoo ops build --force``
retries.

Where "auto" runs the reference although the kernel is built: tensors on other devices or of
other dtypes (the kernels take float16/bfloat16/float32/float64 CPU and CUDA tensors), an
upfirdn2d filter that requires grad (the kernels differentiate with respect to x only) or, on
CUDA, one of more than 1,024 taps (2-D; a 1-D filter counts as its square). The kernels'
autograd goes to second order (double backward, as R1 needs); a third order raises.

The native kernels are torch.library custom ops in one namespace, whatever the device:
``torch.ops.ganzoo.bias_act``, ``bias_act_grad``, ``bias_act_grad2`` (its first and second
derivatives) and ``torch.ops.ganzoo.upfirdn2d``. Each runs the loaded kernel of its tensor's
device (``torch.ops.ganzoo_cpu.*`` or ``torch.ops.ganzoo_cuda.*``, which the extensions
register), has a fake implementation (the output's shape, dtype and strides: channels-last
stays channels-last) and an autograd formula made of these ops, so gradients of every order the
kernels provide are ganzoo ops again; ``torch.library.opcheck`` passes on each
(tests/test_ops_library.py). Hence "auto" also runs the native kernels under torch.compile,
which traces them as opaque ops without a graph break (the StyleGAN2-ADA networks compile,
forward and backward, in one graph). What "auto" picks is decided when the code is traced:
the environment and the build cache are read then (through functions whose result the trace
keeps as a constant), so changing ``GANZOO_OPS_IMPL`` later needs ``torch.compiler.reset()``;
a build that "auto" would start runs at trace time. In eager mode, a call that needs no
autograd calls the kernel directly (the op's own kernel call, minus the dispatcher's round trip
through Python).
"""
from __future__ import annotations

import logging
import os

import torch

from ganzoo.errors import GanzooError

IMPLS = ("auto", "ref", "cpp", "cuda")
IMPL_ENV = "GANZOO_OPS_IMPL"
BUILD_ENV = "GANZOO_OPS_BUILD"
NATIVE_OPS = ("bias_act", "upfirdn2d")   # ops with C++ CPU and CUDA kernels
NATIVE_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

NATIVE_IMPL = {"cpu": "cpp", "cuda": "cuda"}         # device type -> its native impl
NATIVE_DEVICE = {impl: device for device, impl in NATIVE_IMPL.items()}

log = logging.getLogger("ganzoo.ops")
_warned: set[str] = set()
is_compiling = torch.compiler.is_compiling   # True while torch.compile traces the caller


def check_impl(op: str, impl: str, x: torch.Tensor | None = None) -> None:
    """Raise ValueError for an unknown ``impl``, or a native one that cannot take ``x``'s
    device (also for composite ops whose call may not reach a native kernel)."""
    if impl not in IMPLS:
        raise ValueError(f"{op}: unknown impl {impl!r}; choose from {', '.join(IMPLS)}")
    device = NATIVE_DEVICE.get(impl)
    if device is not None and x is not None and x.device.type != device:
        raise ValueError(f"{op}: impl={impl!r} runs on {device.upper()} tensors, got one "
                         f"on {x.device}")


def build_allowed() -> bool:
    """Whether "auto" may compile the native kernels (GANZOO_OPS_BUILD, default 1)."""
    return os.environ.get(BUILD_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _warn_once(op: str, message: str) -> None:
    if op not in _warned:
        _warned.add(op)
        log.warning("%s: %s", op, message)


def select_impl(op: str, impl: str, x: torch.Tensor | None = None) -> str:
    """The implementation ``op`` runs for ``impl`` on tensor ``x``: "ref", "cpp" or "cuda".

    ``x`` None (or an op without a native kernel) always means "ref" after validation.
    Traceable by torch.compile without a graph break: what depends on the process (the
    environment, the build cache, a build) is decided once, when the call is traced, by
    functions whose result the trace keeps as a constant.
    """
    check_impl(op, impl)
    if impl == "ref":
        return "ref"
    if impl == "auto":
        impl = _env_impl()
        if impl == "ref":
            return "ref"
    if x is None or op not in NATIVE_OPS:
        return "ref"
    if impl != "auto":            # an explicit native impl: its device, its dtypes, built now
        check_impl(op, impl, x)
        if x.dtype not in NATIVE_DTYPES:
            raise ValueError(f"{op}: impl={impl!r} takes float16/bfloat16/float32/float64, "
                             f"got {x.dtype}")
        return _load_native(impl)
    # auto: the native kernel of x's device when it is (or may be) built, else the reference
    if x.device.type not in NATIVE_IMPL or x.dtype not in NATIVE_DTYPES:
        return "ref"
    return _auto_native(op, x.device.type)


@torch.compiler.assume_constant_result
def _env_impl() -> str:
    value = os.environ.get(IMPL_ENV, "").strip().lower() or "auto"
    if value not in IMPLS:
        raise GanzooError(f"{IMPL_ENV}={value!r}: expected auto, ref, cpp or cuda")
    return value


@torch.compiler.assume_constant_result
def _load_native(impl: str) -> str:
    """``impl`` ("cpp" or "cuda") after loading (or building) its kernels; raises OpBuildError."""
    from ganzoo.ops import build
    build.load(build.BY_DEVICE[NATIVE_DEVICE[impl]])
    return impl


@torch.compiler.assume_constant_result
def _auto_native(op: str, device_type: str) -> str:
    """What "auto" runs on ``device_type``: its native impl when loaded, in the cache or (with
    GANZOO_OPS_BUILD) built now; else "ref", with one warning per op if the build failed."""
    from ganzoo.ops import build
    spec = build.BY_DEVICE[device_type]
    native = NATIVE_IMPL[device_type]
    if build.loaded(spec) is not None:
        return native
    try:
        build.load(spec, build=build_allowed())
        return native
    except build.NotBuilt:
        return "ref"   # GANZOO_OPS_BUILD=0 and not built: a choice, not a failure
    except GanzooError as e:
        kind = "C++" if native == "cpp" else "CUDA"
        _warn_once(op, f"running the pure-PyTorch reference on {spec.device.upper()}, the "
                   f"{kind} kernel is unavailable: {e} (set {IMPL_ENV}=ref to silence this)")
        return "ref"


def native_ops(x: torch.Tensor):
    """The torch.ops namespace whose kernels take ``x``'s device (``torch.ops.ganzoo_cpu`` or
    ``torch.ops.ganzoo_cuda``), loaded (or built) now if this process has not loaded it."""
    from ganzoo.ops import build
    spec = build.BY_DEVICE.get(x.device.type)
    if spec is None:
        raise ValueError(f"ganzoo's native ops take CPU and CUDA tensors, got one on {x.device}")
    return build.loaded(spec) or build.load(spec)


# Imported after select_impl, which the op modules use.
from ganzoo.ops.bias_act import ACTIVATIONS, bias_act  # noqa: E402
from ganzoo.ops.upfirdn2d import (downsample2d, filter2d, setup_filter, upfirdn2d,  # noqa: E402
                                  upsample2d)
from ganzoo.ops.conv2d_resample import conv2d_resample  # noqa: E402
from ganzoo.ops.modulated_conv import modulated_conv2d  # noqa: E402

__all__ = ["ACTIVATIONS", "IMPLS", "bias_act", "check_impl", "conv2d_resample", "downsample2d",
           "filter2d", "modulated_conv2d", "select_impl", "setup_filter", "upfirdn2d",
           "upsample2d"]
