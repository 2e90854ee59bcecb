"""Adaptive discriminator augmentation pipeline (Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data", appendix B): the 'bgc' set of transforms.

Moved here from the stylegan2-ada plugin unchanged, so that every architecture can use it
(``--augment ada|fixed``); stylegan2-ada's results are bit-identical to before the move.

Every transform is applied to each sample independently with probability ``p`` (a buffer set
from outside, by :class:`~ganzoo.augment.ada.AdaController`). Its strengths are
the paper's defaults (:class:`AugmentStrengths`).

Geometric transforms (pixel blitting: x-flip, rotate90, integer translation; general: isotropic
scale, pre-rotation, anisotropic scale, post-rotation, fractional translation) compose into one
3x3 homogeneous matrix per sample, applied once:

* a sample that drew only pixel-blitting transforms is moved by an exact integer gather (its
  matrix maps pixel centres onto pixel centres), so flips, quarter turns and integer shifts are
  lossless;
* a sample that drew any general transform is resampled: the image is (conceptually)
  extended by mirror reflection so no border appears, upsampled 2x with a 12-tap Lanczos-3
  filter, sampled bilinearly at the transformed 2x output grid, then low-passed with the same
  filter and decimated 2x. The paper uses the 12-tap 'sym6' wavelet filter in the same place;
  Lanczos-3 is our choice: the same length, closed form, symmetric, exactly unity DC gain per
  phase. The reflection is done on coordinates: the mirror-extended image, its upsampled
  version and the bilinear interpolant are all mirror symmetric about the edge pixel centres
  (the 2x grid is symmetric about them), so folding each source coordinate back into the image
  gives the same values as padding by any amount, with a fixed 3-pixel pad for the filter.

Bilinear sampling is written with ``gather`` (backward: ``scatter_add``, whose backward is
``gather`` again), so the pipeline is differentiable to any order with public ops only; the R1
penalty needs the second order. (F.grid_sample's double backward does work in torch 2.13 --
checked with gradgradcheck -- but torch 1.x lacked it; the gather form depends on neither and
lets us fold coordinates before sampling.)

Colour transforms (brightness, contrast, luma flip, hue rotation, saturation) compose into one
4x4 matrix per sample acting on ``[r, g, b, 1]``; luma flip, hue and saturation work about the
luma axis ``v = (1, 1, 1) / sqrt(3)`` as in the paper. A 1-channel image is treated as grey
``(y, y, y)``: the matrix is applied and the three outputs averaged. On grey, hue rotation and
saturation are the identity, so only brightness, contrast and luma flip (``y -> -y``) have an
effect.

Coordinates: matrices act on centred pixel coordinates ``[x, y, 1]`` (x right, y down, unit
one pixel, origin at the image centre). ``AugmentDraw.geom_inv`` maps *output* points to the
*input* points they are read from.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

# ---------------------------------------------------------------------------------------------
# Strengths and presets


@dataclass(frozen=True)
class AugmentStrengths:
    """Probability multipliers (0 = off, 1 = applied with probability p) and magnitudes.

    Magnitudes are the paper's: translations in units of the image size, scale factors
    log-normal with the given std in log2 units, angles as fractions of a half turn
    (1 = uniform over the full circle).
    """
    xflip: float = 0.0
    rotate90: float = 0.0
    xint: float = 0.0
    scale: float = 0.0
    rotate: float = 0.0
    aniso: float = 0.0
    xfrac: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    lumaflip: float = 0.0
    hue: float = 0.0
    saturation: float = 0.0
    xint_max: float = 0.125
    scale_std: float = 0.2
    rotate_max: float = 1.0
    aniso_std: float = 0.2
    xfrac_std: float = 0.125
    brightness_std: float = 0.2
    contrast_std: float = 0.5
    hue_max: float = 1.0
    saturation_std: float = 1.0

    @property
    def uses_color(self) -> bool:
        return any(getattr(self, k) > 0 for k in _COLOR_OPS)


_BLIT_OPS = ("xflip", "rotate90", "xint")
_GEOM_OPS = ("scale", "rotate", "aniso", "xfrac")
_COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
PRESETS: dict[str, tuple[str, ...]] = {
    "blit": _BLIT_OPS,
    "geom": _GEOM_OPS,
    "color": _COLOR_OPS,
    "bgc": _BLIT_OPS + _GEOM_OPS + _COLOR_OPS,
}


def make_strengths(preset: str = "bgc", **overrides: float) -> AugmentStrengths:
    """The preset's transforms switched on (multiplier 1), then ``overrides`` on top."""
    if preset not in PRESETS:
        raise ValueError(f"unknown augment preset {preset!r}; choose from {sorted(PRESETS)}")
    names = {f.name for f in dataclasses.fields(AugmentStrengths)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown augment strength(s) {unknown}; known: {sorted(names)}")
    return AugmentStrengths(**{**{k: 1.0 for k in PRESETS[preset]}, **overrides})


# ---------------------------------------------------------------------------------------------
# Elementary matrices. All take per-sample parameters [N] and return [N, 3, 3] or [N, 4, 4];
# identity parameters give the identity exactly (no float round-off), which keeps undrawn
# transforms exact.


def _eye(n: int, size: int, like: Tensor) -> Tensor:
    return torch.eye(size, dtype=like.dtype, device=like.device).expand(n, size, size).clone()


def translate2d(tx: Tensor, ty: Tensor) -> Tensor:
    m = _eye(tx.shape[0], 3, tx)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def scale2d(sx: Tensor, sy: Tensor) -> Tensor:
    m = _eye(sx.shape[0], 3, sx)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def rotate2d(theta: Tensor) -> Tensor:
    """Rotation by ``theta`` radians about the image centre."""
    c, s = torch.cos(theta), torch.sin(theta)
    m = _eye(theta.shape[0], 3, theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def rotate90_2d(k: Tensor) -> Tensor:
    """Rotation by ``k`` quarter turns (k [N] integer-valued, float dtype); entries are exactly
    0 or +-1 (cos/sin of multiples of pi/2 would not be)."""
    q = k.long() % 4
    cos = torch.tensor([1, 0, -1, 0], device=k.device)[q].to(k.dtype)
    sin = torch.tensor([0, 1, 0, -1], device=k.device)[q].to(k.dtype)
    m = _eye(k.shape[0], 3, k)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    return m


_LUMA = torch.full((3,), 1.0 / math.sqrt(3.0))


def _luma_outer(like: Tensor) -> Tensor:
    """v v^T for the luma axis, padded to 4x4 (zero in the homogeneous row/column)."""
    v = torch.cat([_LUMA, torch.zeros(1)]).to(like)
    return torch.outer(v, v)


def translate3d(b: Tensor) -> Tensor:
    """Adds ``b`` [N] to r, g and b (brightness)."""
    m = _eye(b.shape[0], 4, b)
    m[:, :3, 3] = b[:, None]
    return m


def scale3d(c: Tensor) -> Tensor:
    """Multiplies r, g and b by ``c`` [N] (contrast about 0, the mid-grey of [-1, 1] data)."""
    m = _eye(c.shape[0], 4, c)
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = c
    return m


def luma_flip3d(i: Tensor) -> Tensor:
    """I - 2 i v v^T: for i = 1 negates luma and keeps chroma; i = 0 is the identity."""
    return _eye(i.shape[0], 4, i) - 2 * i[:, None, None] * _luma_outer(i)


def hue_rotate3d(theta: Tensor) -> Tensor:
    """Rotation by ``theta`` about the luma axis (Rodrigues: I + sin K + (1 - cos) K^2)."""
    v = _LUMA.to(theta)
    k = torch.zeros(4, 4).to(theta)
    k[0, 1], k[0, 2], k[1, 2] = -v[2], v[1], -v[0]
    k = k - k.T
    s, c1 = torch.sin(theta)[:, None, None], (1 - torch.cos(theta))[:, None, None]
    return _eye(theta.shape[0], 4, theta) + s * k + c1 * (k @ k)


def saturate3d(s: Tensor) -> Tensor:
    """v v^T + s (I - v v^T) = I + (s - 1)(I - v v^T): scales chroma by ``s``, keeps luma."""
    chroma = torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0])).to(s) - _luma_outer(s)
    return _eye(s.shape[0], 4, s) + (s - 1)[:, None, None] * chroma


# ---------------------------------------------------------------------------------------------
# Drawing per-sample parameters


@dataclass
class AugmentDraw:
    """One minibatch worth of random transforms.

    geom_inv [N, 3, 3]: output -> input centred pixel coordinates.
    blit [N] bool: the sample drew a pixel-blitting transform (x-flip, rotate90, integer shift).
    general [N] bool: the sample drew a general geometric transform (needs resampling).
    color [N, 4, 4]: colour matrix on [r, g, b, 1]; color_on [N] bool: a colour transform drawn.
    """
    geom_inv: Tensor
    blit: Tensor
    general: Tensor
    color: Tensor
    color_on: Tensor


class _Sampler:
    """Random numbers of one dtype/device/generator; every call draws exactly N values so a
    reseeded generator replays the same draws."""

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device,
                 generator: torch.Generator | None):
        self.n, self.dtype, self.gen = n, dtype, generator
        self.device = generator.device if generator is not None else device

    def uniform(self, lo: float = 0.0, hi: float = 1.0) -> Tensor:
        u = torch.rand(self.n, dtype=self.dtype, device=self.device, generator=self.gen)
        return lo + (hi - lo) * u

    def normal(self, std: float = 1.0) -> Tensor:
        return std * torch.randn(self.n, dtype=self.dtype, device=self.device, generator=self.gen)

    def integers(self, high: int) -> Tensor:
        return torch.randint(high, (self.n,), device=self.device, generator=self.gen).to(self.dtype)

    def gate(self, prob: float) -> Tensor:
        """[N] bool, each True with probability ``prob``."""
        return self.uniform() < prob


def _gated(mask: Tensor, value: Tensor, identity: float) -> Tensor:
    return torch.where(mask, value, torch.full_like(value, identity))


def draw_transforms(n: int, height: int, width: int, p: float | Tensor, s: AugmentStrengths, *,
                    dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                    generator: torch.Generator | None = None) -> AugmentDraw:
    """Draw every transform for ``n`` samples of ``height`` x ``width`` at probability ``p``."""
    rng = _Sampler(n, dtype, torch.device(device), generator)
    inv, blit = _draw_blit(rng, p, s, width, height)
    inv_general, general = _draw_general(rng, p, s, width, height)
    color, color_on = _draw_color(rng, p, s)
    out = [inv @ inv_general, blit, general, color, color_on]
    return AugmentDraw(*[t.to(device) for t in out])


def _draw_blit(rng: _Sampler, p: float | Tensor, s: AugmentStrengths, w: int, h: int
               ) -> tuple[Tensor, Tensor]:
    """Inverse matrices of x-flip, rotate90 and integer translation, composed in that order."""
    on_flip, i = rng.gate(p * s.xflip), rng.integers(2)
    on_rot, k = rng.gate(p * s.rotate90), rng.integers(4)
    on_int, tx, ty = rng.gate(p * s.xint), rng.uniform(-1, 1), rng.uniform(-1, 1)
    i, k = _gated(on_flip, i, 0), _gated(on_rot, k, 0)
    tx = _gated(on_int, torch.round(tx * s.xint_max * w), 0)
    ty = _gated(on_int, torch.round(ty * s.xint_max * h), 0)
    # Inverse of (T_3 T_2 T_1) is T_1^-1 T_2^-1 T_3^-1.
    inv = scale2d(1 - 2 * i, torch.ones_like(i))
    inv = inv @ rotate90_2d(-k)
    inv = inv @ translate2d(-tx, -ty)
    return inv, on_flip | on_rot | on_int


def _draw_general(rng: _Sampler, p: float | Tensor, s: AugmentStrengths, w: int, h: int
                  ) -> tuple[Tensor, Tensor]:
    """Inverse matrices of scale, rotation, anisotropic scale, rotation, fractional shift."""
    # Two rotations, each with probability p_rot, so that P(any rotation) = p.
    p_rot = 1 - ((1 - (p * s.rotate).clamp(max=1.0)).clamp(min=0.0).sqrt()
                 if isinstance(p, Tensor) else math.sqrt(max(0.0, 1 - min(1.0, p * s.rotate))))
    on_scale, z_scale = rng.gate(p * s.scale), rng.normal(s.scale_std)
    on_rot1, a1 = rng.gate(p_rot), rng.uniform(-math.pi, math.pi) * s.rotate_max
    on_aniso, z_aniso = rng.gate(p * s.aniso), rng.normal(s.aniso_std)
    on_rot2, a2 = rng.gate(p_rot), rng.uniform(-math.pi, math.pi) * s.rotate_max
    on_frac, fx, fy = rng.gate(p * s.xfrac), rng.normal(s.xfrac_std), rng.normal(s.xfrac_std)
    z_scale, z_aniso = _gated(on_scale, z_scale, 0), _gated(on_aniso, z_aniso, 0)
    a1, a2 = _gated(on_rot1, a1, 0), _gated(on_rot2, a2, 0)
    fx, fy = _gated(on_frac, fx * w, 0), _gated(on_frac, fy * h, 0)
    inv = scale2d(torch.exp2(-z_scale), torch.exp2(-z_scale))
    inv = inv @ rotate2d(-a1)
    inv = inv @ scale2d(torch.exp2(-z_aniso), torch.exp2(z_aniso))
    inv = inv @ rotate2d(-a2)
    inv = inv @ translate2d(-fx, -fy)
    return inv, on_scale | on_rot1 | on_aniso | on_rot2 | on_frac


def _draw_color(rng: _Sampler, p: float | Tensor, s: AugmentStrengths) -> tuple[Tensor, Tensor]:
    """Brightness, contrast, luma flip, hue, saturation, composed in that order."""
    on_b, b = rng.gate(p * s.brightness), rng.normal(s.brightness_std)
    on_c, zc = rng.gate(p * s.contrast), rng.normal(s.contrast_std)
    on_l, i = rng.gate(p * s.lumaflip), rng.integers(2)
    on_h, theta = rng.gate(p * s.hue), rng.uniform(-math.pi, math.pi) * s.hue_max
    on_s, zs = rng.gate(p * s.saturation), rng.normal(s.saturation_std)
    m = translate3d(_gated(on_b, b, 0))
    m = scale3d(torch.exp2(_gated(on_c, zc, 0))) @ m
    m = luma_flip3d(_gated(on_l, i, 0)) @ m
    m = hue_rotate3d(_gated(on_h, theta, 0)) @ m
    m = saturate3d(torch.exp2(_gated(on_s, zs, 0))) @ m
    return m, on_b | on_c | on_l | on_h | on_s


# ---------------------------------------------------------------------------------------------
# Geometric resampling


def _fold_index(i: Tensor, n: int) -> Tensor:
    """Integer indices reflected into [0, n) about the edge pixels (edge not repeated)."""
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def _fold_coord(e: Tensor, n: int) -> Tensor:
    """Edge-based coordinates (pixel k spans [k, k+1]) reflected into [0.5, n - 0.5], the
    continuous counterpart of :func:`_fold_index`."""
    period = 2.0 * (n - 1)
    t = torch.remainder(e - 0.5, period)
    return torch.where(t > n - 1, period - t, t) + 0.5


def _centres(n: int, like: Tensor) -> Tensor:
    """Centred coordinates of the n pixel centres along one axis [n]."""
    return torch.arange(n, dtype=like.dtype, device=like.device) + 0.5 - n / 2


def _map_points(inv: Tensor, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Apply inv [N, 3, 3] to the grid u [W'] x v [H'] -> two [N, H', W'] tensors."""
    a = inv[:, :, :, None, None]
    uu, vv = u[None, :], v[:, None]
    sx = a[:, 0, 0] * uu + a[:, 0, 1] * vv + a[:, 0, 2]
    sy = a[:, 1, 0] * uu + a[:, 1, 1] * vv + a[:, 1, 2]
    return sx, sy


def _gather_pixels(images: Tensor, iy: Tensor, ix: Tensor) -> Tensor:
    """images [N, C, H, W], integer iy, ix [N, H', W'] -> [N, C, H', W'] (differentiable to
    any order in ``images``)."""
    n, c, h, w = images.shape
    flat = (iy * w + ix).reshape(n, 1, -1).expand(n, c, -1)
    return images.reshape(n, c, h * w).gather(2, flat).reshape(n, c, *ix.shape[1:])


def blit(images: Tensor, inv: Tensor) -> Tensor:
    """Exact move of whole pixels: images [N, C, H, W], inv [N, 3, 3] mapping output pixel
    centres onto input pixel centres (flips, quarter turns, integer shifts; quarter turns need
    H == W). Reads outside the image reflect. Returns [N, C, H, W]."""
    _, _, h, w = images.shape
    # Entries and centres are integers / half-integers: every product is exact in float.
    sx, sy = _map_points(inv, _centres(w, inv), _centres(h, inv))
    ix = _fold_index(torch.round(sx + w / 2 - 0.5).long(), w)
    iy = _fold_index(torch.round(sy + h / 2 - 0.5).long(), h)
    return _gather_pixels(images, iy, ix)


_TAPS = 12  # filter length on the 2x grid; offsets d = -5..6 from the coarse pixel
_PAD = 3    # coarse pixels of reflection the upsampling filter reads beyond the image


def lanczos_halfband(dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
                     ) -> Tensor:
    """12-tap Lanczos-3 filter for 2x resampling [12], sum 1, symmetric about its middle.

    Tap d = -5..6 sits (d - 0.5) / 2 coarse pixels from the coarse pixel centre; its two
    polyphase halves (even and odd d) have equal sums, so 2x upsampling with 2 * taps keeps
    DC exactly.
    """
    t = (torch.arange(-5, 7, dtype=torch.float64) - 0.5) / 2
    k = torch.sinc(t) * torch.sinc(t / 3)
    return (k / k.sum()).to(dtype=dtype, device=device)


def _reflect_pad(images: Tensor, pad: int) -> Tensor:
    """Reflection padding by index_select (any pad size, differentiable to any order)."""
    _, _, h, w = images.shape
    cols = _fold_index(torch.arange(-pad, w + pad, device=images.device), w)
    rows = _fold_index(torch.arange(-pad, h + pad, device=images.device), h)
    return images.index_select(3, cols).index_select(2, rows)


def _upsample_matrix(n: int, taps: Tensor) -> Tensor:
    """[n, 2n + 10] matrix of zero insertion + filtering along one axis: output j is
    sum_m x[m] * 2 taps[j - 2m] and sits at coarse edge coordinate (j - 4.5) / 2."""
    m = torch.zeros(n, 2 * n + 10, dtype=taps.dtype, device=taps.device)
    rows = torch.arange(n, device=taps.device)[:, None]
    m[rows, 2 * rows + torch.arange(_TAPS, device=taps.device)] = 2 * taps
    return m


def _upsample2x(x: Tensor, taps: Tensor) -> Tensor:
    """[N, C, H, W] -> [N, C, 2H + 10, 2W + 10], separable. Banded matrix products, because
    single-channel strided convolutions are several times slower on CPU and a matmul is
    differentiable to any order."""
    _, _, h, w = x.shape
    y = x @ _upsample_matrix(w, taps).to(x.dtype)
    return _upsample_matrix(h, taps).to(x.dtype).T @ y


def _downsample2x(x: Tensor, taps: Tensor) -> Tensor:
    """Filter and decimate, no padding: [N, C, 2H + 10, 2W + 10] -> [N, C, H, W]; output i
    is sum_t x[2i + t] * taps[t], so input j sits at (j - 4.5) / 2 in output edge
    coordinates. The matrix is the upsampling one transposed, halved."""
    _, _, h2, w2 = x.shape
    h, w = (h2 - 10) // 2, (w2 - 10) // 2
    y = x @ (_upsample_matrix(w, taps).to(x.dtype).T / 2)
    return (_upsample_matrix(h, taps).to(x.dtype) / 2) @ y


def _bilinear(images: Tensor, jy: Tensor, jx: Tensor) -> Tensor:
    """Bilinear sampling at fractional indices jy, jx [N, H', W'] (kept inside the image)
    -> [N, C, H', W']; four gathers, so derivatives of every order exist."""
    _, _, h, w = images.shape
    x0 = torch.floor(jx).clamp(0, w - 2)
    y0 = torch.floor(jy).clamp(0, h - 2)
    fx = (jx - x0).clamp(0, 1).unsqueeze(1).to(images.dtype)
    fy = (jy - y0).clamp(0, 1).unsqueeze(1).to(images.dtype)
    x0, y0 = x0.long(), y0.long()
    top = torch.lerp(_gather_pixels(images, y0, x0), _gather_pixels(images, y0, x0 + 1), fx)
    bot = torch.lerp(_gather_pixels(images, y0 + 1, x0), _gather_pixels(images, y0 + 1, x0 + 1), fx)
    return torch.lerp(top, bot, fy)


def resample(images: Tensor, inv: Tensor) -> Tensor:
    """Warp images [N, C, H, W] (H, W >= 2) by inv [N, 3, 3] (output -> input centred
    coordinates) with reflection outside, 2x Lanczos up, bilinear, 2x Lanczos down.
    Returns [N, C, H, W]."""
    _, _, h, w = images.shape
    taps = lanczos_halfband(inv.dtype, images.device)
    # The 2x output grid, with 5 extra samples per side for the downsampling filter.
    half = _TAPS // 2 - 1
    u = (torch.arange(-half, 2 * w + half, dtype=inv.dtype, device=inv.device) + 0.5) / 2 - w / 2
    v = (torch.arange(-half, 2 * h + half, dtype=inv.dtype, device=inv.device) + 0.5) / 2 - h / 2
    sx, sy = _map_points(inv, u, v)
    ex, ey = _fold_coord(sx + w / 2, w), _fold_coord(sy + h / 2, h)
    up = _upsample2x(_reflect_pad(images, _PAD), taps)
    # Coarse edge coordinate e (padded: e + PAD) is upsampled index 2 (e + PAD) + 4.5.
    return _downsample2x(_bilinear(up, 2 * (ey + _PAD) + 4.5, 2 * (ex + _PAD) + 4.5), taps)


# ---------------------------------------------------------------------------------------------
# Colour


def apply_color(images: Tensor, matrix: Tensor) -> Tensor:
    """images [N, C, H, W] with C = 3 (rgb) or 1 (grey, treated as (y, y, y) and averaged
    back), matrix [N, 4, 4] on [r, g, b, 1]. Returns [N, C, H, W]."""
    m = matrix.to(images.dtype)
    c = images.shape[1]
    if c == 3:
        out = torch.einsum("nij,njhw->nihw", m[:, :3, :3], images)
        return out + m[:, :3, 3, None, None]
    if c == 1:
        gain = m[:, :3, :3].sum(2).mean(1)
        return images * gain[:, None, None, None] + m[:, :3, 3].mean(1)[:, None, None, None]
    raise ValueError(f"colour augmentation needs 1 or 3 channels, got {c}")


# ---------------------------------------------------------------------------------------------
# The pipeline


def _replace_rows(x: Tensor, mask: Tensor, fn) -> Tensor:
    """x with the samples where ``mask`` [N] is set replaced by fn(those samples); the other
    samples are passed through untouched (bit-exact).

    On the CPU only the selected samples are transformed. On a GPU every sample is, and a
    select keeps the unselected ones: finding the selected rows (nonzero) would make the host
    wait for the GPU three times per D call."""
    if x.device.type != "cpu":
        return torch.where(mask[:, None, None, None], fn(x, slice(None)), x)
    idx = mask.nonzero().squeeze(1)
    if idx.numel() == 0:
        return x
    if idx.numel() == x.shape[0]:
        return fn(x, slice(None))
    return x.index_copy(0, idx, fn(x.index_select(0, idx), idx))


def apply_transforms(images: Tensor, d: AugmentDraw) -> Tensor:
    """Apply a drawn set of transforms: geometric first, then colour."""
    x = _replace_rows(images, d.general, lambda t, i: resample(t, d.geom_inv[i]))
    x = _replace_rows(x, d.blit & ~d.general, lambda t, i: blit(t, d.geom_inv[i]))
    return _replace_rows(x, d.color_on, lambda t, i: apply_color(t, d.color[i]))


class AugmentPipe(nn.Module):
    """ADA augmentation of D's inputs. ``p`` (scalar buffer) is the per-transform probability.

    forward(images [N, C, H, W] in about [-1, 1], generator=None) -> [N, C, H, W]; pass a
    ``torch.Generator`` to make the draws reproducible (gradcheck, tests).
    """

    def __init__(self, preset: str = "bgc", **strength_overrides: float):
        super().__init__()
        self.preset = preset
        self.strengths = make_strengths(preset, **strength_overrides)
        self.register_buffer("p", torch.zeros(()))
        self._p_seen: tuple[int, int] | None = None   # (id, version) of p when last read
        self._p_value = 0.0

    @property
    def probability(self) -> float:
        """``p`` as a Python float, read from the device only after ``p`` changed (its
        tensor version moves with every in-place write): no host-GPU sync per D call."""
        key = (id(self.p), self.p._version)
        if key != self._p_seen:
            self._p_value, self._p_seen = float(self.p), key
        return self._p_value

    def draw(self, images: Tensor, generator: torch.Generator | None = None) -> AugmentDraw:
        n, _, h, w = images.shape
        dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
        # On a GPU the gates compare against p where it lives: a CUDA graph captured once
        # then sees every later value of p (a Python float would be baked into it).
        p = self.p.to(dtype) if images.device.type == "cuda" else self.probability
        return draw_transforms(n, h, w, p, self.strengths, dtype=dtype,
                               device=images.device, generator=generator)

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.probability <= 0:
            return images
        c, h, w = images.shape[1:]
        if self.strengths.uses_color and c not in (1, 3):
            raise ValueError(f"colour augmentation needs 1 or 3 channels, got {c}")
        if min(h, w) < 2:
            raise ValueError(f"images must be at least 2x2, got {h}x{w}")
        return apply_transforms(images, self.draw(images, generator))

    def extra_repr(self) -> str:
        return f"preset={self.preset!r}, p={self.probability:.4f}"
