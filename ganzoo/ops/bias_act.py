"""Fused bias + activation + gain + clamp, the tail of every layer of the style-based networks.

One op instead of four because a native kernel can do all of it in one pass over memory; the
reference below is the specification of that kernel. The native kernels (third_party/cpu/
bias_act.cpp, third_party/cuda/bias_act.cu) compute the value and, for autograd, the first and
second derivatives from the saved input. They run as the custom ops ganzoo::bias_act,
ganzoo::bias_act_grad and ganzoo::bias_act_grad2, whose autograd formulas are each the next op,
so double backward (R1 through the network) works, eager or compiled; third order is not
implemented (use impl="ref").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ganzoo.ops import is_compiling, native_ops, select_impl


@dataclass(frozen=True)
class Activation:
    """``fn(x, alpha)``; ``default_gain`` keeps the output's second moment near the input's
    for unit-Gaussian inputs where that matters (relu and lrelu halve it, hence sqrt(2))."""
    fn: Callable[[Tensor, float], Tensor]
    default_alpha: float = 0.0
    default_gain: float = 1.0


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x),
    "relu": Activation(lambda x, a: F.relu(x), default_gain=math.sqrt(2)),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": Activation(lambda x, a: torch.tanh(x)),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x)),
    "elu": Activation(lambda x, a: F.elu(x, a), 1.0),
    "selu": Activation(lambda x, a: F.selu(x)),
    "softplus": Activation(lambda x, a: F.softplus(x)),
    "swish": Activation(lambda x, a: x * torch.sigmoid(x)),
}


def bias_act(x: Tensor, b: Tensor | None = None, dim: int = 1, act: str = "linear",
             alpha: float | None = None, gain: float | None = None,
             clamp: float | None = None, impl: str = "auto") -> Tensor:
    """``clamp(act(x + b) * gain, -clamp, clamp)``, elementwise.

    Args:
        x: any shape, e.g. [N, C, H, W] or [N, C].
        b: [x.shape[dim]] bias added along ``dim`` (broadcast over every other axis), or None.
        dim: the axis ``b`` runs along (negative counts from the end).
        act: one of ``ACTIVATIONS``: linear, relu, lrelu, tanh, sigmoid, elu, selu, softplus,
            swish (x * sigmoid(x)).
        alpha: lrelu's negative slope (default 0.2) or elu's alpha (default 1); unused by the
            other activations.
        gain: output scale; default sqrt(2) for relu and lrelu, 1 for the others.
        clamp: if not None, the output is clamped to [-clamp, clamp] (after the gain); keeps
            fp16 activations finite.
        impl: "auto" | "ref" | "cpp" | "cuda" (see :mod:`ganzoo.ops`).

    Returns:
        A tensor of x's shape and dtype (``b`` is cast to x's dtype); the native kernels keep
        x's memory layout (e.g. channels-last). Twice differentiable wherever the activation is.
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"bias_act: unknown activation {act!r}; choose from "
                         f"{', '.join(ACTIVATIONS)}")
    if clamp is not None and clamp < 0:
        raise ValueError(f"bias_act: clamp must be >= 0 or None, got {clamp}")
    spec = ACTIVATIONS[act]
    if b is not None:
        dim = dim % x.ndim
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: bias of shape {list(b.shape)} does not match "
                             f"dimension {dim} of x {list(x.shape)}")
    alpha = spec.default_alpha if alpha is None else float(alpha)
    gain = spec.default_gain if gain is None else float(gain)
    if select_impl("bias_act", impl, x) != "ref":
        b = None if b is None else b.to(x.dtype)
        params = (dim if b is not None else 0, act, alpha, gain,
                  -1.0 if clamp is None else float(clamp))
        if is_compiling():
            return torch.ops.ganzoo.bias_act(x, b, *params)
        # Eager mode skips the op's dispatch (see _EagerBiasAct): the same kernel call, and
        # with autograd the same formulas.
        if not _needs_autograd(x, b):     # e.g. G's no-grad pass
            return _kernel(x, b, None, None, *params, 0)
        return _EagerBiasAct.apply(x, b, *params)
    if b is not None:
        x = x + b.to(x.dtype).reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.fn(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# -- native kernels as torch.library custom ops ---------------------------------------------
#
# ganzoo::bias_act (order 0), ganzoo::bias_act_grad (order 1: dy * G'(x + b)) and
# ganzoo::bias_act_grad2 (order 2: ddx * dy * G''(x + b)) run the loaded kernel of the tensor's
# device. Each has a fake implementation (shape, dtype and strides of the kernel's output) for
# torch.compile, and an autograd formula made of the next op: the backward of bias_act is
# bias_act_grad, whose backward is bias_act_grad again (wrt dy) and bias_act_grad2 (wrt x, b),
# so double backward works, traced or not; third order raises, as the kernels stop at 2.

_LIB = torch.library.Library("ganzoo", "FRAGMENT")
_TAGS = (torch.Tag.pt2_compliant_tag,)
_PARAMS = "int dim, str act, float alpha, float gain, float clamp"   # clamp < 0: none
_LIB.define(f"bias_act(Tensor x, Tensor? b, {_PARAMS}) -> Tensor", tags=_TAGS)
_LIB.define(f"bias_act_grad(Tensor dy, Tensor x, Tensor? b, {_PARAMS}) -> Tensor", tags=_TAGS)
_LIB.define(f"bias_act_grad2(Tensor ddx, Tensor dy, Tensor x, Tensor? b, {_PARAMS}) -> Tensor",
            tags=_TAGS)

# Activations whose second derivative is zero wherever it exists: no order-2 kernel call.
_PIECEWISE_LINEAR = frozenset({"linear", "relu", "lrelu"})


def _kernel(x: Tensor, b: Tensor | None, g1: Tensor | None, g2: Tensor | None, dim: int,
            act: str, alpha: float, gain: float, clamp: float, order: int) -> Tensor:
    return native_ops(x).bias_act(x, b, g1, g2, dim, act, alpha, gain, clamp, order)


def _needs_autograd(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _impl(x, b, dim, act, alpha, gain, clamp):
    return _kernel(x, b, None, None, dim, act, alpha, gain, clamp, 0)


def _impl_grad(dy, x, b, dim, act, alpha, gain, clamp):
    return _kernel(x, b, dy, None, dim, act, alpha, gain, clamp, 1)


def _impl_grad2(ddx, dy, x, b, dim, act, alpha, gain, clamp):
    return _kernel(x, b, ddx, dy, dim, act, alpha, gain, clamp, 2)


for _name, _fn in (("bias_act", _impl), ("bias_act_grad", _impl_grad),
                   ("bias_act_grad2", _impl_grad2)):
    for _key in ("CPU", "CUDA"):
        _LIB.impl(_name, _fn, _key)


def _is_dense(x: Tensor) -> bool:
    """Whether x's elements fill its memory without gaps or overlaps in some axis order (what
    the kernels walk in place; anything else they make contiguous first)."""
    if x.is_contiguous() or (x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last)):
        return True
    expected = 1
    axes = sorted((x.stride(d), x.shape[d]) for d in range(x.ndim) if x.shape[d] != 1)
    for stride, size in axes:
        if stride != expected:
            return False
        expected *= size
    return True


def _fake_output(x: Tensor, *grads: Tensor) -> Tensor:
    """The kernels' output: x's shape, dtype and (dense) strides, else contiguous."""
    for g in grads:
        torch._check(g.shape == x.shape, lambda: "bias_act: gradient shape differs from x's")
    if _is_dense(x):
        return torch.empty_like(x)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("ganzoo::bias_act", lib=_LIB)
def _(x, b, dim, act, alpha, gain, clamp):
    return _fake_output(x)


@torch.library.register_fake("ganzoo::bias_act_grad", lib=_LIB)
def _(dy, x, b, dim, act, alpha, gain, clamp):
    return _fake_output(x, dy)


@torch.library.register_fake("ganzoo::bias_act_grad2", lib=_LIB)
def _(ddx, dy, x, b, dim, act, alpha, gain, clamp):
    return _fake_output(x, ddx, dy)


def _sum_bias(d: Tensor, dim: int) -> Tensor:
    return d.sum(dim=[i for i in range(d.ndim) if i != dim])


def _save(ctx, inputs, output):
    """Saves the tensors (x, b / dy, x, b) and keeps the scalar parameters."""
    *tensors, dim, act, alpha, gain, clamp = inputs
    ctx.save_for_backward(*tensors)
    ctx.params = (dim, act, alpha, gain, clamp)


def _backward(ctx, dy):
    """y = G(x + b): dx = bias_act_grad(dy) = dy * G'(x + b); db sums dx over the other axes."""
    x, b = ctx.saved_tensors
    dim = ctx.params[0]
    dx = db = None
    if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
        dx = torch.ops.ganzoo.bias_act_grad(dy, x, b, *ctx.params)
        if ctx.needs_input_grad[1]:
            db = _sum_bias(dx, dim)
    return dx if ctx.needs_input_grad[0] else None, db, None, None, None, None, None


def _backward_grad(ctx, ddx):
    """dx = dy * G'(x + b): linear in dy (bias_act_grad again), G'' for x and b."""
    dy, x, b = ctx.saved_tensors
    act, dim = ctx.params[1], ctx.params[0]
    d_dy = d_x = d_b = None
    if ctx.needs_input_grad[0]:
        d_dy = torch.ops.ganzoo.bias_act_grad(ddx, x, b, *ctx.params)
    if (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]) and act not in _PIECEWISE_LINEAR:
        d_x = torch.ops.ganzoo.bias_act_grad2(ddx, dy, x, b, *ctx.params)
        if ctx.needs_input_grad[2]:
            d_b = _sum_bias(d_x, dim)
    return (d_dy, d_x if ctx.needs_input_grad[1] else None, d_b, None, None, None, None, None)


def _backward_grad2(ctx, *grads):
    raise RuntimeError("bias_act: the native kernels provide gradients up to second order; "
                       "use impl='ref' for higher orders")


torch.library.register_autograd("ganzoo::bias_act", _backward, setup_context=_save, lib=_LIB)
torch.library.register_autograd("ganzoo::bias_act_grad", _backward_grad, setup_context=_save,
                                lib=_LIB)
torch.library.register_autograd("ganzoo::bias_act_grad2", _backward_grad2, lib=_LIB)


class _EagerBiasAct(torch.autograd.Function):
    """ganzoo::bias_act for eager mode without the op's dispatch: the op's registered autograd
    rebuilds the schema's arguments in Python on every call, which cost more than the kernel
    at the networks' sizes (a [4, 8, 4, 4] lrelu with autograd: 42 us a call through the op,
    17 us through this Function; torch 2.13, one CPU thread). Same kernel, same setup and
    backward functions as the op's (its gradient is the op ganzoo::bias_act_grad)."""

    @staticmethod
    def forward(ctx, x, b, dim, act, alpha, gain, clamp):
        _save(ctx, (x, b, dim, act, alpha, gain, clamp), None)
        return _kernel(x, b, None, None, dim, act, alpha, gain, clamp, 0)

    backward = staticmethod(_backward)
