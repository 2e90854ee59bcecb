"""Fused bias + activation + gain + clamp, the tail of every layer of the style-based networks.

One op instead of four because a native kernel can do all of it in one pass over memory; the
reference below is the specification of that kernel. The native kernels (third_party/cpu/
bias_act.cpp, third_party/cuda/bias_act.cu) compute the value and, for autograd, the first and
second derivatives from the saved input: the backward pass is an autograd function built from
the same kernel, so double backward (R1 through the network) works; third order is not
implemented (use impl="ref").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ganzoo.ops import native_ops, select_impl


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
        params = _Params(dim if b is not None else 0, act, alpha, gain,
                         -1.0 if clamp is None else float(clamp))
        if not _needs_autograd(x, b):     # e.g. G's no-grad pass: skip the Function's cost
            return _kernel(x, b, None, None, params, 0)
        return _BiasAct.apply(x, b, params)
    if b is not None:
        x = x + b.to(x.dtype).reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.fn(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# -- native kernels with autograd ------------------------------------------------------------

# Activations whose second derivative is zero wherever it exists: no order-2 kernel call.
_PIECEWISE_LINEAR = frozenset({"linear", "relu", "lrelu"})


@dataclass(frozen=True)
class _Params:
    dim: int
    act: str
    alpha: float
    gain: float
    clamp: float    # < 0: no clamp


def _kernel(x: Tensor, b: Tensor | None, g1: Tensor | None, g2: Tensor | None, p: _Params,
            order: int) -> Tensor:
    return native_ops(x).bias_act(x, b, g1, g2, p.dim, p.act, p.alpha, p.gain, p.clamp, order)


def _needs_autograd(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _sum_bias(d: Tensor, dim: int) -> Tensor:
    return d.sum(dim=[i for i in range(d.ndim) if i != dim])


class _BiasAct(torch.autograd.Function):
    """y = G(x + b); dy/dx = G'(x + b), computed by _BiasActGrad from the saved x and b."""

    @staticmethod
    def forward(ctx, x, b, p):
        ctx.save_for_backward(x, b)
        ctx.p = p
        return _kernel(x, b, None, None, p, 0)

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        p = ctx.p
        dx = db = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            dx = _BiasActGrad.apply(dy, x, b, p)
            if ctx.needs_input_grad[1]:
                db = _sum_bias(dx, p.dim)
        return dx if ctx.needs_input_grad[0] else None, db, None


class _BiasActGrad(torch.autograd.Function):
    """dx = dy * G'(x + b); its own gradient uses G' again (wrt dy) and G'' (wrt x, b)."""

    @staticmethod
    def forward(ctx, dy, x, b, p):
        ctx.save_for_backward(dy, x, b)
        ctx.p = p
        return _kernel(x, b, dy, None, p, 1)

    @staticmethod
    def backward(ctx, ddx):
        dy, x, b = ctx.saved_tensors
        p = ctx.p
        d_dy = d_x = d_b = None
        if ctx.needs_input_grad[0]:
            d_dy = _BiasActGrad.apply(ddx, x, b, p)
        if (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]) and p.act not in _PIECEWISE_LINEAR:
            d_x = _BiasActGrad2.apply(ddx, dy, x, b, p)
            if ctx.needs_input_grad[2]:
                d_b = _sum_bias(d_x, p.dim)
        return d_dy, d_x if ctx.needs_input_grad[1] else None, d_b, None


class _BiasActGrad2(torch.autograd.Function):
    """ddx * dy * G''(x + b): the second derivative, last order the kernel provides."""

    @staticmethod
    def forward(ctx, ddx, dy, x, b, p):
        return _kernel(x, b, ddx, dy, p, 2)

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("bias_act: the native kernels provide gradients up to second order; "
                           "use impl='ref' for higher orders")
