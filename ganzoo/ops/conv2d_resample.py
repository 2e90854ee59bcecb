"""2-D convolution fused with FIR up- or down-sampling by an integer factor.

Resampling and convolution commute (both are linear and shift-invariant), so each is done on
the smaller grid: upsampling runs the convolution as a strided transposed convolution on the
input grid before filtering, downsampling filters first and lets the convolution stride. Both
do a quarter of the multiply-adds of convolving at the high resolution for factor 2.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ganzoo.ops import check_impl
from ganzoo.ops.upfirdn2d import filter_size, upfirdn2d


def _transpose_weight(w: Tensor, groups: int) -> Tensor:
    """Conv weight [O, I/g, kh, kw] -> the conv_transpose2d weight [I, O/g, kh, kw] that
    computes the true convolution with ``w`` (hence the spatial flip)."""
    O, Ig, kh, kw = w.shape
    w = w.reshape(groups, O // groups, Ig, kh, kw).transpose(1, 2)
    return w.reshape(groups * Ig, O // groups, kh, kw).flip([2, 3])


def _up_padding(k: int, fk: int, up: int, p: int) -> tuple[int, int]:
    """Padding of the transposed conv's output, so filtering it reproduces
    conv2d(upsample2d(x, f, up, padding=p), w) exactly (derivation in conv2d_resample)."""
    before = (fk + up - 1) // 2 + p - k + 1
    after = 2 * p - 2 * k + up + fk - before
    return before, after


def conv2d_resample(x: Tensor, w: Tensor, f: Tensor | None = None, up: int = 1, down: int = 1,
                    padding: int = 0, groups: int = 1, impl: str = "auto") -> Tensor:
    """Convolution (a correlation, like ``nn.Conv2d``) with FIR resampling.

    Args:
        x: [N, I, H, W].
        w: [O, I / groups, kh, kw], already scaled (no equalised-lr gain is applied here).
        f: FIR filter from :func:`~ganzoo.ops.setup_filter`, used only when up or down > 1.
        up, down: 1 or an integer factor; not both > 1.
        padding: zero padding of the convolution, pixels per side.
        impl: "auto" | "ref" | "cpp" | "cuda" (see :mod:`ganzoo.ops`).

    Semantics:
        - up = down = 1: ``F.conv2d(x, w, padding=padding, groups=groups)``.
        - up > 1: exactly ``F.conv2d(upsample2d(x, f, up, padding=padding), w, groups=groups)``
          (the conv's padding is taken from the upsampled image's filter tails rather than
          zeros). Output [N, O, H * up + 2 p - kh + 1, W * up + 2 p - kw + 1].
        - down > 1: exactly ``F.conv2d(upfirdn2d(x, f, padding=q), w, stride=down,
          groups=groups)`` with q = (p + (fw - down + 1) // 2, p + (fw - down) // 2) per axis:
          the low-pass filter centred as in ``downsample2d``, then a strided conv. Away from
          the borders this equals ``downsample2d(F.conv2d(x, w, padding=p), f, down)``.

    Why the up path is exact: with u the zero-inserted x, both sides are windows of the full
    convolution u * f * flip(w); the transposed conv computes u * flip(w) on the input grid
    and the FIR pass adds * f, with paddings chosen so the window lines up.
    """
    check_impl("conv2d_resample", impl, x)   # passed on: upfirdn2d picks its kernel per tensor
    if up > 1 and down > 1:
        raise ValueError("conv2d_resample: up and down cannot both be > 1")
    if min(up, down) < 1:
        raise ValueError(f"conv2d_resample: up and down must be >= 1, got {up}, {down}")
    kh, kw = w.shape[2:]
    w = w.to(x.dtype)
    if up == 1 and down == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    fw, fh = filter_size(f)
    if up > 1:
        x = F.conv_transpose2d(x, _transpose_weight(w, groups), stride=up, groups=groups)
        px = _up_padding(kw, fw, up, padding)
        py = _up_padding(kh, fh, up, padding)
        return upfirdn2d(x, f, padding=[*px, *py], gain=up * up, impl=impl)
    pad = [padding + (fw - down + 1) // 2, padding + (fw - down) // 2,
           padding + (fh - down + 1) // 2, padding + (fh - down) // 2]
    if kh == 1 and kw == 1:
        # A 1x1 conv commutes with dropping pixels: drop them first, convolve fewer.
        return F.conv2d(upfirdn2d(x, f, down=down, padding=pad, impl=impl), w, groups=groups)
    return F.conv2d(upfirdn2d(x, f, padding=pad, impl=impl), w, stride=down, groups=groups)
