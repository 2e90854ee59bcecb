"""StyleGAN2's modulated convolution: a per-sample style scales the weight's input channels,
and demodulation rescales each output channel back to unit expected variance.

Demodulation replaces AdaIN's instance normalisation: it normalises by the statistics the
weights imply instead of the activations' actual ones, which removes the "droplet" artefacts
that instance normalisation caused (Karras et al. 2020).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ganzoo.ops import check_impl
from ganzoo.ops.conv2d_resample import conv2d_resample

DEMOD_EPS = 1e-8


def demodulation_coefficients(weight: Tensor, styles: Tensor) -> Tensor:
    """[N, O]: 1 / sqrt(sum over i, kh, kw of (weight[o, i] * styles[n, i])^2 + 1e-8).

    Computed as styles^2 @ (sum of squares of weight over the kernel)^T, without forming the
    [N, O, I, kh, kw] modulated weight."""
    dtype = _at_least_float32(weight.dtype)
    w2 = weight.to(dtype).square().sum(dim=[2, 3])                     # [O, I]
    return (styles.to(dtype).square() @ w2.t() + DEMOD_EPS).rsqrt()    # [N, O]


def _at_least_float32(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True,
                     up: int = 1, down: int = 1, padding: int | None = None,
                     resample_filter: Tensor | None = None, fused: bool | None = None,
                     impl: str = "auto") -> Tensor:
    """Convolve each sample with its own modulated (and demodulated) weight.

    For sample n: w_n[o, i] = weight[o, i] * styles[n, i]; with ``demodulate``,
    w_n[o] /= sqrt(sum_{i, kh, kw} w_n[o, i]^2 + 1e-8). Then
    ``y[n] = conv2d_resample(x[n], w_n, resample_filter, up, down, padding)``; for up = 2 that
    is exactly ``F.conv2d(upsample2d(x[n], f, padding=padding), w_n)`` (see
    :func:`~ganzoo.ops.conv2d_resample`).

    Upsampling uses the cheap formulation (stride-2 transposed conv on the low-resolution grid,
    then the FIR filter): 4x fewer multiply-adds than convolving the upsampled image. It is
    upsample-then-conv, except that beyond the border the conv sees the upsampling filter's
    tails rather than zero padding.

    Args:
        x: [N, I, H, W].
        weight: [O, I, kh, kw], any runtime scale already applied.
        styles: [N, I] per-sample input-channel scales.
        demodulate: False for layers whose output scale must follow the style (toRGB).
        padding: conv padding per side; None = kh // 2 (same size for odd kernels).
        resample_filter: FIR filter for up / down > 1.
        fused: True = one grouped conv with N groups of per-sample weights (no passes over
            the activations for the styles); False = scale x by styles, one ordinary conv of
            the whole batch with the shared weight, scale by the demodulation coefficients.
            Both compute the same function. None = fused only on CUDA with autograd off, in
            float32 or for one sample (the original implementation's inference choice);
            elsewhere non-fused, which measured
            1.0-1.6x faster than fused on CPU (torch 2.13, one thread) in training and
            inference alike.
        impl: "auto" | "ref" | "cpp" | "cuda" (see :mod:`ganzoo.ops`).

    Returns:
        [N, O, H', W'] in x's dtype. The weights are modulated and demodulated in (at least)
        float32 and only then cast, so fp16 activations never meet an overflowed weight.
    """
    check_impl("modulated_conv2d", impl, x)   # passed on: upfirdn2d picks its kernel per tensor
    N, I, H, W = x.shape
    O, wi, kh, kw = weight.shape
    if wi != I or styles.shape != (N, I):
        raise ValueError(f"modulated_conv2d: x {list(x.shape)}, weight {list(weight.shape)} "
                         f"and styles {list(styles.shape)} do not agree")
    if padding is None:
        padding = kh // 2
    if fused is None:
        # cuDNN's grouped fp16 convolutions (N groups) measured slower than the batch-wide
        # conv on an H100 (7 ms per call in training's no-grad G pass): fused only in float32
        # or for one sample, as the original implementation chooses for inference.
        fused = x.is_cuda and not torch.is_grad_enabled() and (x.dtype == torch.float32
                                                               or N == 1)
    resample = dict(f=resample_filter, up=up, down=down, padding=padding, impl=impl)

    if not fused:
        if demodulate and x.dtype == torch.float16:
            # Demodulation undoes any per-sample scale of the styles, so bring them to at most
            # 1 before they multiply fp16 activations, which keeps x * styles from overflowing.
            styles = styles / styles.abs().amax(dim=1, keepdim=True).clamp_min(DEMOD_EPS)
        x = x * styles.to(x.dtype)[:, :, None, None]
        x = conv2d_resample(x, weight, **resample)
        if demodulate:
            x = x * demodulation_coefficients(weight, styles).to(x.dtype)[:, :, None, None]
        return x

    dtype = _at_least_float32(weight.dtype)
    w = weight.to(dtype)[None] * styles.to(dtype)[:, None, :, None, None]  # [N, O, I, kh, kw]
    if demodulate:
        w = w * demodulation_coefficients(weight, styles)[:, :, None, None, None]
    x = x.reshape(1, N * I, H, W)
    x = conv2d_resample(x, w.reshape(N * O, I, kh, kw), groups=N, **resample)
    return x.reshape(N, O, x.shape[2], x.shape[3])
