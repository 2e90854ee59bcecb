"""How uint8 images become the FID Inception's input: the named preprocessing modes.

The same network gives different features when images reach it resized or scaled
differently, and FIDs differ with them (by more than many papers' margins for images that
are not 299 px). Each mode reproduces one reference implementation's resize and scaling, so
that a score compares with the numbers that implementation produces:

- ``legacy-tf`` (default): the TF 2015-12-05 graph as FID was defined on it, and as NVlabs'
  StyleGAN2-ADA metrics and torch-fidelity run it. uint8 -> float32 in [0, 255], resized to
  299 like TF1's ``tf.image.resize_bilinear`` (align_corners=False: source coordinate
  ``dst * in / out``, no half-pixel offset, neighbours clamped at the last pixel), then
  ``(x - 128) / 128``.
- ``pytorch-fid``: mseitzer's pytorch-fid. ``x / 255``, PyTorch's bilinear resize
  (align_corners=False, half-pixel centres, no antialiasing) to 299, then ``2 x - 1``.
- ``clean``: clean-fid's default mode. Each channel as a float32 PIL image ('F' mode) of
  the uint8 values, PIL bicubic resize to 299 (antialiased when shrinking), clipped to
  [0, 255], then ``(x - 128) / 128``.

Every function takes uint8 NCHW with 3 channels and returns float32 NCHW at ``size``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ganzoo.errors import GanzooError

DEFAULT_FID_MODE = "legacy-tf"


def _tf1_axis(n_in: int, n_out: int, device) -> tuple[Tensor, Tensor, Tensor]:
    """TF1's bilinear sampling positions along one axis: lower and upper source index and
    the weight of the upper one. Computed in float32 as TF1 (and torch-fidelity) do, so
    that positions land on the same side of each pixel."""
    scale = torch.tensor(n_in / n_out, dtype=torch.float32)
    src = torch.arange(n_out, dtype=torch.float32, device=device) * scale.to(device)
    lo = src.long()                                   # floor: src >= 0
    hi = (lo + 1).clamp(max=n_in - 1)
    return lo, hi, src - lo.float()


def tf1_resize_bilinear(x: Tensor, size: int) -> Tensor:
    """``tf.image.resize_bilinear(x, [size, size], align_corners=False)`` of float NCHW:
    interpolate along rows (width) first, then along columns, as TF1 does."""
    y_lo, y_hi, dy = _tf1_axis(x.shape[-2], size, x.device)
    x_lo, x_hi, dx = _tf1_axis(x.shape[-1], size, x.device)
    left, right = x[..., x_lo], x[..., x_hi]
    rows = left + (right - left) * dx
    top, bottom = rows[..., y_lo, :], rows[..., y_hi, :]
    return top + (bottom - top) * dy[:, None]


def legacy_tf(images: Tensor, size: int) -> Tensor:
    x = tf1_resize_bilinear(images.float(), size)
    return (x - 128) / 128


def pytorch_fid(images: Tensor, size: int) -> Tensor:
    # pytorch-fid resizes even at 299 (an identity there) and never antialiases.
    x = images.float() / 255
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return 2 * x - 1


def _pil_bicubic(channel: np.ndarray, size: int) -> np.ndarray:
    img = Image.fromarray(channel.astype(np.float32))        # float32 -> PIL mode 'F'
    return np.asarray(img.resize((size, size), resample=Image.BICUBIC)).clip(0, 255)


def clean(images: Tensor, size: int) -> Tensor:
    # PIL works on the CPU, one channel of one image at a time (clean-fid does the same).
    arr = images.cpu().numpy()
    out = np.stack([np.stack([_pil_bicubic(c, size) for c in img]) for img in arr])
    x = torch.from_numpy(out.astype(np.float32)).to(images.device)
    return (x - 128) / 128


FID_MODES: dict[str, Callable[[Tensor, int], Tensor]] = {
    "legacy-tf": legacy_tf, "pytorch-fid": pytorch_fid, "clean": clean}

#: How each mode resizes, for the records ("resize": "tf1-bilinear 32->299").
RESIZE_NAMES = {"legacy-tf": "tf1-bilinear", "pytorch-fid": "torch-bilinear",
                "clean": "pil-bicubic"}


def check_fid_mode(mode: str) -> str:
    if mode not in FID_MODES:
        raise GanzooError(f"unknown FID preprocessing mode '{mode}' (modes: "
                          f"{', '.join(FID_MODES)}; default {DEFAULT_FID_MODE})")
    return mode
