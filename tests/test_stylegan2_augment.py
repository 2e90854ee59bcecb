"""ADA augmentation pipeline and p controller (plugins/stylegan2_ada/augment.py, ada.py)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganzoo_plugins.stylegan2_ada.ada import AdaController
from ganzoo_plugins.stylegan2_ada.augment import (AugmentPipe, apply_color, apply_transforms,
                                                  blit, lanczos_halfband, resample, rotate2d,
                                                  rotate90_2d, scale2d, translate2d)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth(n: int = 1, size: int = 32, dtype=torch.float64) -> torch.Tensor:
    """Band-limited test image [n, 3, size, size] (periods of 12 px and more)."""
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    img = torch.stack([torch.sin(2 * math.pi * xx / 16) * torch.cos(2 * math.pi * yy / 20),
                       torch.cos(2 * math.pi * (xx + yy) / 24),
                       torch.sin(2 * math.pi * yy / 12 + 1)])
    return img.to(dtype).expand(n, 3, size, size).clone()


def _one(v: float) -> torch.Tensor:
    return torch.tensor([v], dtype=torch.float64)


def _pipe(preset: str = "bgc", p: float = 1.0, **kw) -> AugmentPipe:
    pipe = AugmentPipe(preset, **kw)
    pipe.p.copy_(torch.as_tensor(p))
    return pipe


# --- identity --------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3])
def test_p0_is_exact_identity(channels):
    x = torch.randn(4, channels, 16, 16)
    assert torch.equal(_pipe(p=0.0)(x), x)


def test_undrawn_samples_are_bit_exact():
    pipe, x = _pipe(p=0.25), torch.randn(64, 3, 16, 16)
    d = pipe.draw(x, _gen(5))
    out = pipe(x, generator=_gen(5))
    untouched = ~(d.blit | d.general | d.color_on)
    assert 0 < untouched.sum() < 64
    assert torch.equal(out[untouched], x[untouched])
    assert not torch.allclose(out[~untouched], x[~untouched])


def test_blit_only_samples_keep_pixel_values():
    """Pixel blitting moves whole pixels: every output value is an input value."""
    x = torch.randn(8, 3, 12, 12)
    out = _pipe("blit")(x, generator=_gen(1))
    for a, b in zip(out, x):
        assert torch.isin(a, b).all()


# --- pixel blitting is exactly invertible ----------------------------------------------------

def test_xflip_twice_and_matches_flip():
    x = torch.randn(2, 3, 9, 9)
    flip = scale2d(-torch.ones(2), torch.ones(2))
    assert torch.equal(blit(x, flip), x.flip(3))
    assert torch.equal(blit(blit(x, flip), flip), x)


def test_rotate90_four_times_and_matches_rot90():
    x = torch.randn(2, 3, 8, 8)
    quarter = rotate90_2d(torch.ones(2))
    y = blit(x, quarter)
    assert torch.equal(y, torch.rot90(x, 1, (2, 3))) or torch.equal(y, torch.rot90(x, -1, (2, 3)))
    for _ in range(3):
        y = blit(y, quarter)
    assert torch.equal(y, x)


def test_integer_translation_inverse_and_reflection():
    x = torch.randn(1, 3, 10, 10)
    shift = translate2d(torch.tensor([-3.0]), torch.tensor([2.0]))  # inverse of a (3, -2) shift
    y = blit(x, shift)
    assert torch.equal(y[..., :8, 3:], x[..., 2:, :7])      # interior moved by (3, -2)
    assert torch.equal(y[..., :8, :3], x[..., 2:, 1:4].flip(-1))  # mirrored, edge not repeated
    back = blit(y, translate2d(torch.tensor([3.0]), torch.tensor([-2.0])))
    assert torch.equal(back[..., 2:, :7], x[..., 2:, :7])   # everything that stayed inside


# --- general geometric: one resampling, inverse gives the image back -------------------------

def test_geometric_then_inverse_matrix_recovers_smooth_image():
    x = _smooth()
    fwd = (translate2d(_one(0.7), _one(-1.3)) @ rotate2d(_one(0.5)) @ scale2d(_one(1.1), _one(1.1))
           @ scale2d(_one(1.05), _one(1 / 1.05)) @ rotate2d(_one(-2.0)))
    y = resample(x, torch.linalg.inv(fwd))
    back = resample(y, fwd)
    # Interpolation error (Lanczos-3 2x up/down + bilinear, applied twice) on the central
    # 14x14, whose pixels stay inside the frame throughout.
    assert (back - x)[..., 9:-9, 9:-9].abs().max() < 0.02
    assert (y - x).abs().max() > 0.5


def test_half_turn_resample_matches_exact_flip():
    """Conventions line up: a 180 degree rotation through the resampler is the double flip."""
    x = _smooth()
    y = resample(x, rotate2d(_one(math.pi)))
    assert (y - x.flip(2, 3))[..., 3:-3, 3:-3].abs().max() < 0.01


def test_resample_agrees_with_blit_on_whole_pixel_moves():
    """The exact and the filtered path implement the same matrix convention."""
    x = _smooth(2)
    quarter = rotate90_2d(torch.ones(2, dtype=torch.float64))
    m = quarter @ translate2d(_one(2.0).expand(2), _one(-1.0).expand(2))
    # Away from the reflected border, where the kink of the mirror gets low-passed.
    assert (resample(x, m) - blit(x, m))[..., 5:-5, 5:-5].abs().max() < 0.01


def test_no_border_appears_under_rotation():
    x = torch.ones(1, 3, 16, 16)
    y = resample(x, rotate2d(_one(0.7)).float())
    assert torch.allclose(y, x, atol=1e-5)  # constant image stays constant, corners included


def test_lanczos_filter_properties():
    taps = lanczos_halfband(torch.float64)
    assert taps.shape == (12,)
    assert torch.allclose(taps.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(taps, taps.flip(0))
    assert torch.allclose(taps[0::2].sum(), taps[1::2].sum())


# --- colour ----------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3])
def test_color_matrix_inverse_recovers_image(channels):
    x = torch.randn(16, channels, 6, 6, dtype=torch.float64)
    d = _pipe("color").draw(x, _gen(2))
    y = apply_color(x, d.color)
    assert (y - x).abs().max() > 0.1
    assert torch.allclose(apply_color(y, torch.linalg.inv(d.color)), x, atol=1e-10)


def _stats_pipe(op: str) -> AugmentPipe:
    ops = ("brightness", "contrast", "lumaflip", "hue", "saturation")
    others = {k: 0.0 for k in ops if k != op}
    return _pipe("color", **others)


def _luma(x):
    return x.mean(1)


def test_brightness_shifts_mean_with_std_02():
    x = torch.rand(4000, 3, 4, 4, dtype=torch.float64) * 2 - 1
    y = _stats_pipe("brightness")(x, generator=_gen(3))
    shift = (y - x).mean((1, 2, 3))
    assert abs(shift.std().item() - 0.2) < 0.02 and abs(shift.mean().item()) < 0.02
    assert torch.allclose(y - x, shift[:, None, None, None].expand_as(x), atol=1e-12)


def test_contrast_scales_std_lognormal_05():
    x = torch.rand(4000, 3, 4, 4, dtype=torch.float64) * 2 - 1
    y = _stats_pipe("contrast")(x, generator=_gen(4))
    ratio = torch.log2(y.std((1, 2, 3)) / x.std((1, 2, 3)))
    assert abs(ratio.std().item() - 0.5) < 0.05 and abs(ratio.mean().item()) < 0.05


def test_saturation_scales_chroma_only():
    x = torch.rand(4000, 3, 4, 4, dtype=torch.float64) * 2 - 1
    y = _stats_pipe("saturation")(x, generator=_gen(5))
    assert torch.allclose(_luma(y), _luma(x), atol=1e-12)
    chroma = lambda t: (t - _luma(t)[:, None]).flatten(1).norm(dim=1)  # noqa: E731
    ratio = torch.log2(chroma(y) / chroma(x))
    assert abs(ratio.std().item() - 1.0) < 0.08 and abs(ratio.mean().item()) < 0.08


def test_hue_keeps_luma_and_chroma_norm_lumaflip_negates_luma():
    x = torch.rand(500, 3, 4, 4, dtype=torch.float64) * 2 - 1
    chroma = lambda t: (t - _luma(t)[:, None]).flatten(1).norm(dim=1)  # noqa: E731
    y = _stats_pipe("hue")(x, generator=_gen(6))
    assert torch.allclose(_luma(y), _luma(x), atol=1e-12)
    assert torch.allclose(chroma(y), chroma(x), atol=1e-12)
    assert (y - x).abs().amax((1, 2, 3)).median() > 0.1
    z = _stats_pipe("lumaflip")(x, generator=_gen(7))
    flipped = torch.isclose(_luma(z), -_luma(x), atol=1e-12).all(dim=(1, 2))
    kept = torch.isclose(_luma(z), _luma(x), atol=1e-12).all(dim=(1, 2))
    assert (flipped | kept).all() and 0.4 < flipped.double().mean() < 0.6
    assert torch.allclose(chroma(z), chroma(x), atol=1e-12)


def test_grey_images_get_only_brightness_contrast_lumaflip():
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    y = _pipe("color", brightness=0, contrast=0, lumaflip=0)(x, generator=_gen(8))
    assert torch.allclose(y, x, atol=1e-12)  # hue and saturation leave grey alone
    z = _pipe("color", hue=0, saturation=0, brightness=0, contrast=0)(x, generator=_gen(8))
    assert all(torch.allclose(a, b) or torch.allclose(a, -b) for a, b in zip(z, x))


def test_transform_probability_is_p_and_rotation_split():
    x = torch.zeros(4000, 3, 4, 4)
    d = _pipe("color", p=0.3, contrast=0, lumaflip=0, hue=0, saturation=0).draw(x, _gen(9))
    assert abs(d.color_on.float().mean().item() - 0.3) < 0.03
    # Two rotations of probability 1 - sqrt(1 - p) each: some rotation with probability p.
    d = _pipe("geom", p=0.5, scale=0, aniso=0, xfrac=0).draw(x, _gen(10))
    assert abs(d.general.float().mean().item() - 0.5) < 0.03


def test_bad_arguments():
    with pytest.raises(ValueError):
        AugmentPipe("nope")
    with pytest.raises(ValueError):
        AugmentPipe("bgc", sharpen=1.0)
    with pytest.raises(ValueError):
        _pipe("bgc")(torch.zeros(2, 4, 8, 8))
    assert _pipe("geom")(torch.zeros(2, 4, 8, 8), generator=_gen()).shape == (2, 4, 8, 8)


# --- gradients -------------------------------------------------------------------------------

def _mixed_case() -> tuple[AugmentPipe, int]:
    """A seed at p = 0.2 whose 3 samples take the resampling, the blitting and the untouched
    geometric path, so gradcheck covers all of them and the merging."""
    pipe, x = _pipe("bgc", p=0.2), torch.zeros(3, 3, 8, 8, dtype=torch.float64)
    for seed in range(200):
        d = pipe.draw(x, _gen(seed))
        paths = {int(g) * 2 + int(b) for g, b in zip(d.general, d.blit)}
        if paths >= {2, 1, 0} and d.color_on.any():
            return pipe, seed
    raise AssertionError("no seed covers every path")


def test_gradcheck_and_gradgradcheck_all_paths():
    pipe, seed = _mixed_case()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    f = lambda t: pipe(t, generator=_gen(seed))  # noqa: E731 - same draws on every call
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,), fast_mode=True)


def test_gradcheck_grey_full_pipeline():
    pipe = _pipe("bgc", p=1.0)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    f = lambda t: pipe(t, generator=_gen(1))  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_r1_double_backward_through_pipeline():
    torch.manual_seed(0)
    d_net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2),
                          nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                          nn.Flatten(), nn.Linear(8 * 8 * 8, 1))
    pipe = _pipe("bgc", p=0.6)
    reals = torch.randn(8, 3, 16, 16, requires_grad=True)
    logits = d_net(pipe(reals, generator=_gen(3)))
    (grad,) = torch.autograd.grad(logits.sum(), reals, create_graph=True)
    penalty = grad.square().sum((1, 2, 3)).mean()
    penalty.backward()
    # Biases ahead of a piecewise-linear activation do not enter grad wrt the input: None.
    grads = [m.weight.grad for m in d_net if hasattr(m, "weight")]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_draws_reproducible_and_apply_matches_forward():
    pipe, x = _pipe(p=0.7), torch.randn(4, 3, 8, 8)
    a = pipe(x, generator=_gen(11))
    assert torch.equal(a, pipe(x, generator=_gen(11)))
    assert torch.equal(a, apply_transforms(x, pipe.draw(x, _gen(11))))


# --- controller ------------------------------------------------------------------------------

def _feed(ctl: AdaController, rt: float, batch: int = 32) -> float | None:
    """One minibatch whose logits have mean sign ``rt``."""
    n_pos = round((rt + 1) / 2 * batch)
    ctl.accumulate(torch.cat([torch.ones(n_pos), -torch.ones(batch - n_pos)])[:, None])
    return ctl.step(batch)


def test_controller_moves_p_up_and_down_every_interval():
    ctl = AdaController(target=0.6, interval=4, speed_kimg=500)
    assert [_feed(ctl, 0.9) for _ in range(3)] == [None] * 3
    p = _feed(ctl, 0.9)
    assert p == pytest.approx(32 * 4 / 500_000) and ctl.p == p and ctl.rt == pytest.approx(0.875)
    for _ in range(4):
        _feed(ctl, 0.25)
    assert ctl.p == 0.0 and ctl.rt == pytest.approx(0.25)
    for _ in range(8):
        _feed(ctl, -1.0)
    assert ctl.p == 0.0  # clamped below


def test_controller_reaches_one_after_500_kimg_and_is_not_clamped_above():
    """The official controller clamps p at 0 only: it keeps climbing past 1 while D
    overfits, and comes back down as soon as r_t falls below the target."""
    ctl = AdaController()
    images = 0
    while ctl.p < 1.0:
        _feed(ctl, 1.0)
        images += 32
        assert images < 600_000
    assert 500_000 <= images < 500_000 + 32 * 4
    p_at_one = ctl.p
    for _ in range(8):
        _feed(ctl, 1.0)
    assert ctl.p == pytest.approx(p_at_one + 2 * 32 * 4 / 500_000)
    for _ in range(4):
        _feed(ctl, 0.0)
    assert ctl.p == pytest.approx(p_at_one + 32 * 4 / 500_000)


def test_controller_state_round_trip_mid_interval():
    a = AdaController(target=0.5, speed_kimg=100)
    for rt in (0.9, 0.8, 0.9, 1.0, 0.7, 0.6):
        _feed(a, rt)
    b = AdaController()
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict()
    for rt in (0.9, 0.2, 0.1, 0.3, 0.8, 0.9):
        assert _feed(a, rt) == _feed(b, rt)
    assert a.p == b.p and a.rt == b.rt
