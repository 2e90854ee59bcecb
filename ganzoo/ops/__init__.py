"""Custom ops of the style-based networks: pure-PyTorch references and native kernels.

The reference implementations are the specification: a native kernel must match them (values
and gradients, double backward included). Every op takes ``impl``:

- ``"auto"`` (default): the native kernel for the tensor's device when it is available, else
  the reference, with one logged warning per op and process saying why (e.g. "ninja is not
  installed"). Today the native kernels are C++ CPU kernels of ``bias_act`` and ``upfirdn2d``
  (and so of ``upsample2d``, ``downsample2d``, ``filter2d`` and the resampling inside
  ``conv2d_resample`` / ``modulated_conv2d``); CUDA tensors run the reference.
- ``"ref"``: the reference, built from public torch ops only, so it runs on every device and
  is differentiable twice by plain autograd.
- ``"cpp"``: the C++ CPU kernel, built now if needed; any problem raises
  :class:`~ganzoo.ops.build.OpBuildError` (a :class:`~ganzoo.errors.GanzooError`).
- ``"cuda"``: raises ValueError; ganzoo has no CUDA kernels yet (the build machinery in
  :mod:`ganzoo.ops.build` is ready for them).

Environment:

- ``GANZOO_OPS_IMPL=ref`` makes every ``"auto"`` call use the reference (a global escape hatch
  for users and tests); ``GANZOO_OPS_IMPL=cpp`` makes them require the C++ kernels. An
  explicit ``impl=`` argument other than ``"auto"`` is not overridden.
- ``GANZOO_OPS_BUILD=0``: ``"auto"`` uses the C++ kernels only if they are already built (in
  the cache, or loaded by this process) and never compiles. Default ``1``: the first ``"auto"``
  call on a CPU tensor compiles them (about a minute on 2 cores, once per source and torch
  version; see :mod:`ganzoo.ops.build`).

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
other dtypes (the kernels take float16/bfloat16/float32/float64 CPU tensors), an upfirdn2d
filter that requires grad (the kernel differentiates with respect to x only), and code being
traced by torch.compile (the kernels have no fake-tensor implementation). The kernels'
autograd goes to second order (double backward, as R1 needs); a third order raises.
"""
from __future__ import annotations

import logging
import os

import torch

from ganzoo.errors import GanzooError

IMPLS = ("auto", "ref", "cpp", "cuda")
IMPL_ENV = "GANZOO_OPS_IMPL"
BUILD_ENV = "GANZOO_OPS_BUILD"
NATIVE_OPS = ("bias_act", "upfirdn2d")   # ops with a C++ CPU kernel
NATIVE_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

log = logging.getLogger("ganzoo.ops")
_warned: set[str] = set()
_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None) or (lambda: False)


def check_impl(op: str, impl: str) -> None:
    """Raise ValueError for an ``impl`` that ``op`` cannot run (unknown names, "cuda")."""
    if impl in ("auto", "ref", "cpp"):
        return
    if impl == "cuda":
        raise ValueError(f"{op}: impl='cuda' is not available: ganzoo has no CUDA kernels yet "
                         "(only C++ CPU kernels); use impl='auto', 'cpp' (CPU) or 'ref'")
    raise ValueError(f"{op}: unknown impl {impl!r}; choose from {', '.join(IMPLS)}")


def _env_impl() -> str:
    value = os.environ.get(IMPL_ENV, "").strip().lower() or "auto"
    if value not in ("auto", "ref", "cpp"):
        raise GanzooError(f"{IMPL_ENV}={value!r}: expected auto, ref or cpp")
    return value


def build_allowed() -> bool:
    """Whether "auto" may compile the native kernels (GANZOO_OPS_BUILD, default 1)."""
    return os.environ.get(BUILD_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _warn_once(op: str, message: str) -> None:
    if op not in _warned:
        _warned.add(op)
        log.warning("%s: %s", op, message)


def select_impl(op: str, impl: str, x: torch.Tensor | None = None) -> str:
    """The implementation ``op`` runs for ``impl`` on tensor ``x``: "ref" or "cpp".

    ``x`` None (or an op without a native kernel) always means "ref" after validation.
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
    from ganzoo.ops import build
    spec = build.CPU_EXTENSION
    if impl == "cpp":
        if x.device.type != "cpu":
            raise ValueError(f"{op}: impl='cpp' runs on CPU tensors, got one on {x.device}")
        if x.dtype not in NATIVE_DTYPES:
            raise ValueError(f"{op}: impl='cpp' takes float16/bfloat16/float32/float64, "
                             f"got {x.dtype}")
        build.load(spec)
        return "cpp"
    # auto
    if x.device.type != "cpu" or x.dtype not in NATIVE_DTYPES:
        if x.device.type == "cuda":
            _warn_once(op, "no CUDA kernel in this ganzoo version; running the pure-PyTorch "
                       "reference")
        return "ref"
    if _is_compiling():
        return "ref"   # the kernels have no fake-tensor implementation for tracing
    if build.loaded(spec) is not None:
        return "cpp"
    try:
        build.load(spec, build=build_allowed())
        return "cpp"
    except build.NotBuilt:
        return "ref"   # GANZOO_OPS_BUILD=0 and not built: a choice, not a failure
    except GanzooError as e:
        _warn_once(op, f"running the pure-PyTorch reference on CPU, the C++ kernel is "
                   f"unavailable: {e} (set {IMPL_ENV}=ref to silence this)")
        return "ref"


# Imported after select_impl, which the op modules use.
from ganzoo.ops.bias_act import ACTIVATIONS, bias_act  # noqa: E402
from ganzoo.ops.upfirdn2d import (downsample2d, filter2d, setup_filter, upfirdn2d,  # noqa: E402
                                  upsample2d)
from ganzoo.ops.conv2d_resample import conv2d_resample  # noqa: E402
from ganzoo.ops.modulated_conv import modulated_conv2d  # noqa: E402

__all__ = ["ACTIVATIONS", "IMPLS", "bias_act", "check_impl", "conv2d_resample", "downsample2d",
           "filter2d", "modulated_conv2d", "select_impl", "setup_filter", "upfirdn2d",
           "upsample2d"]
