"""upfirdn2d: upsample by zero insertion, pad, FIR-filter, downsample (in that order).

The one resampling primitive of the style-based networks: up- and down-sampling with a
low-pass FIR filter (e.g. [1, 3, 3, 1]) instead of nearest/bilinear or strided convolutions,
which keeps the networks free of aliasing that a discriminator could latch onto.

The native kernels (third_party/cpu/upfirdn2d.cpp, third_party/cuda/upfirdn2d.cu) work on the
input grid directly. Their gradient
is again an upfirdn2d: downsampling's transpose is zero insertion, a valid convolution's is a
full one with the flipped filter, zero insertion's is downsampling; so the backward pass swaps
up and down, flips the filter and adjusts the padding (:func:`_gradient_geometry`), and one
kernel serves the forward pass and every order of backward.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ganzoo.ops import is_compiling, native_ops, select_impl

Padding = int | Sequence[int]
CUDA_MAX_TAPS = 1024     # 2-D taps the CUDA kernel keeps in shared memory (kMaxTaps)


def setup_filter(f: Sequence[float] | Tensor | None, normalize: bool = True,
                 separable: bool | None = None,
                 device: torch.device | str | None = None) -> Tensor:
    """A float32 FIR filter for :func:`upfirdn2d`.

    Args:
        f: taps as a list or tensor, 1-D [k] or 2-D [fh, fw]; None means the identity [1].
        normalize: divide by the sum of the taps, so a constant signal keeps its value.
        separable: keep a 1-D filter 1-D (applied along x, then y); False turns it into its
            2-D outer product. Default: separable only for >= 8 taps, where two 1-D passes are
            cheaper than one k x k pass; short filters such as [1, 3, 3, 1] become 2-D
            ([4, 4], 16 taps).

    Returns:
        [k] (separable) or [fh, fw] float32 tensor.
    """
    f = torch.as_tensor([1.0] if f is None else f, dtype=torch.float32, device=device)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"setup_filter: expected 1-D or 2-D taps, got shape {list(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = f[:, None] * f[None, :]
    if f.ndim == 2 and separable:
        raise ValueError("setup_filter: a 2-D filter cannot be separable")
    if normalize:
        f = f / f.sum()
    return f


def filter_size(f: Tensor | None) -> tuple[int, int]:
    """(width, height) of a filter from :func:`setup_filter`."""
    if f is None:
        return 1, 1
    return (f.shape[0], f.shape[0]) if f.ndim == 1 else (f.shape[1], f.shape[0])


def _pair(v: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    if len(v) != 2:
        raise ValueError(f"upfirdn2d: {name} must be an int or (x, y), got {v}")
    return int(v[0]), int(v[1])


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """int p, (px, py) or (x0, x1, y0, y1) -> (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    p = [int(v) for v in padding]
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    if len(p) == 4:
        return p[0], p[1], p[2], p[3]
    raise ValueError(f"upfirdn2d: padding must be an int, (x, y) or (x0, x1, y0, y1), "
                     f"got {padding}")


def upfirdn2d(x: Tensor, f: Tensor | None, up: int | Sequence[int] = 1,
              down: int | Sequence[int] = 1, padding: Padding = 0, flip_filter: bool = False,
              gain: float = 1, impl: str = "auto") -> Tensor:
    """Upsample, pad, FIR-filter and downsample a batch of images, channel by channel.

    1. Upsample: insert ``up - 1`` zeros after every pixel along each axis,
       [H, W] -> [H * uy, W * ux] (the zeros after the last pixel included).
    2. Pad by (x0, x1, y0, y1) zeros; a negative amount crops instead.
    3. Filter with ``f``: a true convolution (``flip_filter=False``) or a correlation
       (``flip_filter=True``), keeping only outputs where the filter lies inside the padded
       image. A 2-D filter [fh, fw] is applied as is; a 1-D filter [k] is applied along x, then
       along y (separable). The output is multiplied by ``gain``.
    4. Downsample: keep pixels 0, dx, 2 dx, ... and 0, dy, 2 dy, ...

    Args:
        x: [N, C, H, W].
        f: filter from :func:`setup_filter` ([fh, fw] or [k]); None = identity.
        up, down: int or (x, y) factors >= 1.
        padding: int, (px, py) or (x0, x1, y0, y1), in pixels of the upsampled image.
        impl: "auto" | "ref" | "cpp" | "cuda" (see :mod:`ganzoo.ops`). The native kernels do
            not differentiate with respect to ``f``: a filter that requires grad runs the
            reference under "auto".

    Returns:
        [N, C, ceil(H' / dy), ceil(W' / dx)] with H' = H * uy + y0 + y1 - fh + 1 (W' alike),
        x's dtype (and, with the native kernels, x's memory format).
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d: expected x of shape [N, C, H, W], got {list(x.shape)}")
    ux, uy = _pair(up, "up")
    dx, dy = _pair(down, "down")
    if min(ux, uy, dx, dy) < 1:
        raise ValueError(f"upfirdn2d: up and down must be >= 1, got up={up}, down={down}")
    x0, x1, y0, y1 = parse_padding(padding)
    N, C, H, W = x.shape
    fw, fh = filter_size(f)
    if H * uy + y0 + y1 < fh or W * ux + x0 + x1 < fw:
        raise ValueError(f"upfirdn2d: padded image [{H * uy + y0 + y1}, {W * ux + x0 + x1}] "
                         f"is smaller than the filter [{fh}, {fw}]")
    if f is not None and f.ndim not in (1, 2):
        raise ValueError(f"upfirdn2d: filter must be 1-D or 2-D, got shape {list(f.shape)}")
    f_grad = f is not None and f.requires_grad and torch.is_grad_enabled()
    wide = x.is_cuda and fw * fh > CUDA_MAX_TAPS       # the CUDA kernel's shared-memory limit
    chosen = select_impl("upfirdn2d", "ref" if (f_grad or wide) and impl == "auto" else impl, x)
    if chosen != "ref":
        if f_grad:
            raise ValueError(f"upfirdn2d: impl={chosen!r} does not differentiate with respect "
                             "to the filter; use impl='ref'")
        if wide:
            raise ValueError(f"upfirdn2d: impl='cuda' takes at most {CUDA_MAX_TAPS} filter "
                             f"taps, got {fh} x {fw}; use impl='ref'")
        if f is None:
            f = torch.ones(1, 1, device=x.device)
        args = ([ux, uy], [dx, dy], [x0, x1, y0, y1], bool(flip_filter), float(gain))
        if is_compiling():
            return torch.ops.ganzoo.upfirdn2d(x, f.detach(), *args)
        # Eager mode skips the op's dispatch (see _EagerUpfirdn2d): the same kernel call, and
        # with autograd the same formula.
        if not (torch.is_grad_enabled() and x.requires_grad):
            return _run_kernel(x, f, *args)
        return _EagerUpfirdn2d.apply(x, f.detach(), *args)

    # Zero insertion: pair every pixel with up - 1 zeros, then flatten the pairs.
    if ux > 1 or uy > 1:
        x = x.reshape(N, C, H, 1, W, 1)
        x = F.pad(x, [0, ux - 1, 0, 0, 0, uy - 1])
        x = x.reshape(N, C, H * uy, W * ux)
    x = F.pad(x, [x0, x1, y0, y1])

    if f is not None:
        # Every channel is filtered alike: fold channels into the batch for a 1-channel conv.
        f = f.to(x.dtype)
        if not flip_filter:  # conv2d correlates; a true convolution needs the flipped filter
            f = f.flip(list(range(f.ndim)))
        x = x.reshape(N * C, 1, x.shape[2], x.shape[3])
        if f.ndim == 2:
            x = F.conv2d(x, (f * gain)[None, None])
        else:
            x = F.conv2d(x, (f * gain)[None, None, None, :])
            x = F.conv2d(x, f[None, None, :, None])
        x = x.reshape(N, C, x.shape[2], x.shape[3])
    elif gain != 1:
        x = x * gain

    if dx > 1 or dy > 1:
        x = x[:, :, ::dy, ::dx]
    return x


def upsample2d(x: Tensor, f: Tensor | None, up: int | Sequence[int] = 2, padding: Padding = 0,
               flip_filter: bool = False, gain: float = 1, impl: str = "auto") -> Tensor:
    """[N, C, H, W] -> [N, C, H * uy + y0 + y1, W * ux + x0 + x1]: zero insertion, then ``f``
    centred on the upsampled grid.

    The filter gain is multiplied by ux * uy: zero insertion divides the mean by that, so a
    normalised filter then keeps a constant image constant. ``padding`` adds to the centring
    padding, in upsampled pixels.
    """
    ux, uy = _pair(up, "up")
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [x0 + (fw + ux - 1) // 2, x1 + (fw - ux) // 2, y0 + (fh + uy - 1) // 2, y1 + (fh - uy) // 2]
    return upfirdn2d(x, f, up=(ux, uy), padding=p, flip_filter=flip_filter,
                     gain=gain * ux * uy, impl=impl)


def downsample2d(x: Tensor, f: Tensor | None, down: int | Sequence[int] = 2,
                 padding: Padding = 0, flip_filter: bool = False, gain: float = 1,
                 impl: str = "auto") -> Tensor:
    """[N, C, H, W] -> [N, C, ceil((H + y0 + y1) / dy), ceil((W + x0 + x1) / dx)]: low-pass
    ``f`` centred on the image, then every ``down``-th pixel. ``padding`` adds to the centring
    padding."""
    dx, dy = _pair(down, "down")
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [x0 + (fw - dx + 1) // 2, x1 + (fw - dx) // 2, y0 + (fh - dy + 1) // 2, y1 + (fh - dy) // 2]
    return upfirdn2d(x, f, down=(dx, dy), padding=p, flip_filter=flip_filter, gain=gain,
                     impl=impl)


def filter2d(x: Tensor, f: Tensor | None, padding: Padding = 0, flip_filter: bool = False,
             gain: float = 1, impl: str = "auto") -> Tensor:
    """[N, C, H, W] -> [N, C, H + y0 + y1, W + x0 + x1]: ``f`` centred on the image (for an
    even filter size the extra tap falls before the centre)."""
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


# -- the native kernels as a torch.library custom op -----------------------------------------
#
# ganzoo::upfirdn2d runs the loaded kernel of the tensor's device, with a fake implementation
# (the kernel's output shape, dtype and memory format) for torch.compile, and an autograd
# formula that is ganzoo::upfirdn2d again: every order of backward is the same op.

_LIB = torch.library.Library("ganzoo", "FRAGMENT")
_LIB.define("upfirdn2d(Tensor x, Tensor f, int[] up, int[] down, int[] pad, bool flip, "
            "float gain) -> Tensor", tags=(torch.Tag.pt2_compliant_tag,))


def _run_kernel(x: Tensor, f: Tensor, up: Sequence[int], down: Sequence[int],
                pad: Sequence[int], flip: bool, gain: float) -> Tensor:
    return native_ops(x).upfirdn2d(x, f, list(up), list(down), list(pad), flip, gain)


_LIB.impl("upfirdn2d", _run_kernel, "CPU")
_LIB.impl("upfirdn2d", _run_kernel, "CUDA")


def _output_size(n: int, up: int, down: int, pad0: int, pad1: int, taps: int) -> int:
    padded = n * up + pad0 + pad1
    torch._check(padded >= taps, lambda: "upfirdn2d: the padded image is smaller than the "
                 "filter")
    return (padded - taps) // down + 1


@torch.library.register_fake("ganzoo::upfirdn2d", lib=_LIB)
def _(x, f, up, down, pad, flip, gain):
    torch._check(x.ndim == 4, lambda: "upfirdn2d: expected x of shape [N, C, H, W]")
    torch._check(f.ndim in (1, 2), lambda: "upfirdn2d: filter must be 1-D or 2-D")
    N, C, H, W = x.shape
    fw, fh = filter_size(f)
    out = (N, C, _output_size(H, up[1], down[1], pad[2], pad[3], fh),
           _output_size(W, up[0], down[0], pad[0], pad[1], fw))
    return torch.empty(out, dtype=x.dtype, device=x.device, memory_format=(
        torch.channels_last if _writes_channels_last(x) else torch.contiguous_format))


def _writes_channels_last(x: Tensor) -> bool:
    """The kernels write channels-last for a channels-last input (one that is not also
    contiguous NCHW, as a 1-channel or 1x1 tensor is), else contiguous NCHW; the gradient
    keeps the input's layout too."""
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _gradient_geometry(up: Sequence[int], down: Sequence[int], pad: Sequence[int],
                       in_size: tuple[int, int], out_size: tuple[int, int],
                       taps: tuple[int, int]) -> tuple[list[int], list[int], list[int]]:
    """(up, down, pad) of the upfirdn2d that maps the output's gradient back onto the input
    (with the filter flipped relative to the forward pass).

    Per axis (input n, up u, down d, padding p0/p1, k taps, output m): zero-insert the
    gradient by d (length m d), full-correlate it with the filter reversed relative to the
    forward pass (pad k - 1 - p0 before; after, whatever makes the filtered length n u), then
    keep every u-th value: n of them.
    """
    pads = []
    for axis in (0, 1):   # x, y
        n, m, k = in_size[axis], out_size[axis], taps[axis]
        u, d = up[axis], down[axis]
        p0 = pad[2 * axis]
        pads += [k - 1 - p0, n * u - m * d + p0]
    return list(down), list(up), pads


def _setup_context(ctx, inputs, output):
    x, f, up, down, pad, flip, gain = inputs
    ctx.save_for_backward(f)
    ctx.args = (up, down, pad, flip, gain)
    ctx.sizes = (x.shape[3], x.shape[2]), (output.shape[3], output.shape[2])
    ctx.channels_last = _writes_channels_last(x)


def _backward(ctx, dy):
    f, = ctx.saved_tensors
    up, down, pad, flip, gain = ctx.args
    in_size, out_size = ctx.sizes
    g_up, g_down, g_pad = _gradient_geometry(up, down, pad, in_size, out_size, filter_size(f))
    if ctx.channels_last:
        dy = dy.contiguous(memory_format=torch.channels_last)   # no-op when it already is
    dx = torch.ops.ganzoo.upfirdn2d(dy, f, g_up, g_down, g_pad, not flip, gain)
    return dx, None, None, None, None, None, None


torch.library.register_autograd("ganzoo::upfirdn2d", _backward, setup_context=_setup_context,
                                lib=_LIB)


class _EagerUpfirdn2d(torch.autograd.Function):
    """ganzoo::upfirdn2d for eager mode, without the op's dispatch and its registered
    autograd's per-call cost (see bias_act's _EagerBiasAct): the same kernel, setup and
    backward (itself the op ganzoo::upfirdn2d)."""

    @staticmethod
    def forward(ctx, x, f, up, down, pad, flip, gain):
        y = _run_kernel(x, f, up, down, pad, flip, gain)
        _setup_context(ctx, (x, f, up, down, pad, flip, gain), y)
        return y

    backward = staticmethod(_backward)
