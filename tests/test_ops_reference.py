"""Reference custom ops (ganzoo.ops): bias_act against the activations' formulas, upfirdn2d
against a slow per-pixel definition, resampling conv against its stated equivalences, gradients
and double backward in float64, and impl selection."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d

from ganzoo.ops import (ACTIVATIONS, bias_act, conv2d_resample, downsample2d, filter2d,
                        modulated_conv2d, setup_filter, upfirdn2d, upsample2d)

SQRT2 = math.sqrt(2)
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805

FORMULAS = {  # act -> (formula on a float64 numpy array with alpha, default alpha, default gain)
    "linear": (lambda x, a: x, None, 1.0),
    "relu": (lambda x, a: np.maximum(x, 0), None, SQRT2),
    "lrelu": (lambda x, a: np.where(x >= 0, x, a * x), 0.2, SQRT2),
    "tanh": (lambda x, a: np.tanh(x), None, 1.0),
    "sigmoid": (lambda x, a: 1 / (1 + np.exp(-x)), None, 1.0),
    "elu": (lambda x, a: np.where(x > 0, x, a * (np.exp(x) - 1)), 1.0, 1.0),
    "selu": (lambda x, a: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1)), None,
             1.0),
    "softplus": (lambda x, a: np.log1p(np.exp(x)), None, 1.0),
    "swish": (lambda x, a: x / (1 + np.exp(-x)), None, 1.0),
}


def test_every_activation_has_a_formula():
    assert set(FORMULAS) == set(ACTIVATIONS)


@pytest.mark.parametrize("act", sorted(FORMULAS))
def test_bias_act_matches_formula(act):
    formula, alpha, gain = FORMULAS[act]
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64) * 2
    b = torch.randn(5, dtype=torch.float64)
    xb = x.numpy() + b.numpy()[None, :, None, None]
    got = bias_act(x, b, act=act)
    np.testing.assert_allclose(got.numpy(), formula(xb, alpha) * gain, rtol=1e-12, atol=1e-12)
    # Explicit gain and alpha override the defaults; bias along the last axis.
    a2 = 0.3 if alpha is not None else None
    got = bias_act(x, torch.full((4,), 0.5, dtype=torch.float64), dim=-1, act=act, alpha=a2,
                   gain=0.7)
    np.testing.assert_allclose(got.numpy(), formula(x.numpy() + 0.5, a2) * 0.7, rtol=1e-12,
                               atol=1e-12)


def test_bias_act_clamp_after_gain_and_no_bias():
    x = torch.linspace(-10, 10, 101, dtype=torch.float64)
    got = bias_act(x, act="lrelu", clamp=3.0)
    expected = np.clip(np.where(x >= 0, x, 0.2 * x) * SQRT2, -3, 3)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    assert got.max() == 3.0 and got.min() < 0
    assert torch.equal(bias_act(x, clamp=None), x)


def test_bias_act_keeps_dtype_and_checks_arguments():
    x = torch.randn(3, 4)
    assert bias_act(x, torch.zeros(4, dtype=torch.float64), act="relu").dtype == torch.float32
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act(x, act="gelu2")
    with pytest.raises(ValueError, match="does not match"):
        bias_act(x, torch.zeros(3))
    with pytest.raises(ValueError, match="clamp"):
        bias_act(x, clamp=-1)


def slow_upfirdn2d(x: np.ndarray, f: np.ndarray, up=(1, 1), down=(1, 1), pad=(0, 0, 0, 0),
                   flip_filter=False, gain=1.0) -> np.ndarray:
    """The definition, pixel by pixel: zero insertion, zero padding (negative = crop),
    filtering (true convolution unless flip_filter), keeping every down-th pixel."""
    (ux, uy), (dx, dy), (x0, x1, y0, y1) = up, down, pad
    N, C, H, W = x.shape
    u = np.zeros((N, C, H * uy, W * ux))
    for i in range(H):
        for j in range(W):
            u[:, :, i * uy, j * ux] = x[:, :, i, j]
    Hp, Wp = H * uy + y0 + y1, W * ux + x0 + x1
    p = np.zeros((N, C, Hp, Wp))
    for i in range(Hp):
        for j in range(Wp):
            si, sj = i - y0, j - x0
            if 0 <= si < H * uy and 0 <= sj < W * ux:
                p[:, :, i, j] = u[:, :, si, sj]
    f2 = np.outer(f, f) if f.ndim == 1 else f
    fh, fw = f2.shape
    out = np.zeros((N, C, Hp - fh + 1, Wp - fw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            for a in range(fh):
                for b in range(fw):
                    # Convolution: the tap index runs opposite to the pixel index.
                    tap = f2[a, b] if flip_filter else f2[fh - 1 - a, fw - 1 - b]
                    out[:, :, i, j] += p[:, :, i + a, j + b] * tap
    return out[:, :, ::dy, ::dx] * gain


FILTERS = {
    "2d_asym": np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]),
    "sep_asym": np.array([1.0, 2.0, -0.5, 0.25]),
    "2d_1331": np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0,
}


@pytest.mark.parametrize("fname", sorted(FILTERS))
@pytest.mark.parametrize("up,down,pad", [
    ((1, 1), (1, 1), (0, 0, 0, 0)),
    ((2, 2), (1, 1), (2, 1, 2, 1)),
    ((1, 1), (2, 2), (1, 1, 1, 1)),
    ((2, 1), (1, 2), (3, 0, 1, 2)),
    ((2, 2), (2, 2), (-1, 2, 1, -2)),
    ((1, 1), (1, 1), (-2, 3, 0, -1)),
])
@pytest.mark.parametrize("flip", [False, True])
def test_upfirdn2d_matches_slow_definition(fname, up, down, pad, flip):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 5, 6))
    f = FILTERS[fname]
    expected = slow_upfirdn2d(x, f, up, down, pad, flip, gain=1.5)
    got = upfirdn2d(torch.from_numpy(x), torch.from_numpy(f), up=up, down=down, padding=pad,
                    flip_filter=flip, gain=1.5)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)


def test_upfirdn2d_is_true_convolution():
    """With full padding and no resampling it is scipy's 2-D convolution."""
    rng = np.random.default_rng(1)
    x, f = rng.standard_normal((7, 9)), FILTERS["2d_asym"]
    got = upfirdn2d(torch.from_numpy(x)[None, None], torch.from_numpy(f),
                    padding=(f.shape[1] - 1, f.shape[1] - 1, f.shape[0] - 1, f.shape[0] - 1))
    np.testing.assert_allclose(got[0, 0].numpy(), convolve2d(x, f, mode="full"), rtol=1e-12)


def test_upfirdn2d_padding_forms_and_errors():
    x = torch.randn(1, 2, 4, 4)
    f = setup_filter([1, 2, 1])
    assert torch.equal(upfirdn2d(x, f, padding=1), upfirdn2d(x, f, padding=(1, 1)))
    assert torch.equal(upfirdn2d(x, f, padding=(1, 2)), upfirdn2d(x, f, padding=(1, 1, 2, 2)))
    assert torch.equal(upfirdn2d(x, None), x)
    with pytest.raises(ValueError, match="padding"):
        upfirdn2d(x, f, padding=(1, 2, 3))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        upfirdn2d(x[0], f)
    with pytest.raises(ValueError, match="smaller than the filter"):
        upfirdn2d(x, f, padding=-2)


def test_setup_filter():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    assert torch.allclose(f.sum(), torch.tensor(1.0))
    taps = torch.tensor([1.0, 3, 3, 1])
    assert torch.allclose(f, torch.outer(taps, taps) / 64)
    assert setup_filter([1] * 8).shape == (8,)                    # long filters stay separable
    assert setup_filter([1, 3, 3, 1], separable=True).shape == (4,)
    assert setup_filter([1, 2], normalize=False).sum() == 9   # outer product, not normalised
    assert setup_filter(None).shape == (1, 1)


@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 2, 1], [1] * 8])
def test_resampling_keeps_a_constant_image_constant_away_from_borders(taps):
    f = setup_filter(taps)
    x = torch.full((1, 2, 16, 16), 3.0, dtype=torch.float64)
    m = len(taps)  # border pixels see the zero padding
    down = downsample2d(x, f.double())
    assert down.shape == (1, 2, 8, 8)
    torch.testing.assert_close(down[..., m:-m, m:-m], torch.full_like(down[..., m:-m, m:-m], 3.0))
    up = upsample2d(x, f.double())
    assert up.shape == (1, 2, 32, 32)
    torch.testing.assert_close(up[..., m:-m, m:-m], torch.full_like(up[..., m:-m, m:-m], 3.0))
    same = filter2d(x, f.double())
    assert same.shape == x.shape
    torch.testing.assert_close(same[..., m:-m, m:-m], x[..., m:-m, m:-m])


def test_upsample2d_gain_preserves_mean_and_centres_the_filter():
    x = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    x[0, 0, 2, 3] = 1.0
    up = upsample2d(x, setup_filter([1, 3, 3, 1]).double())
    assert torch.isclose(up.sum(), torch.tensor(4.0, dtype=torch.float64))  # 2 x 2 per pixel
    # The impulse's energy lands around (4.5, 6.5), the centre of its 2x2 footprint.
    ys, xs = torch.meshgrid(torch.arange(12.), torch.arange(12.), indexing="ij")
    assert torch.isclose((up[0, 0] * ys).sum() / up.sum(), torch.tensor(4.5, dtype=torch.float64))
    assert torch.isclose((up[0, 0] * xs).sum() / up.sum(), torch.tensor(6.5, dtype=torch.float64))


def test_gradcheck_bias_act():
    torch.manual_seed(0)
    # Values kept away from the kinks at 0 so finite differences stay on one side.
    sign = torch.where(torch.rand(2, 3, 2, 2) < 0.5, -1.0, 1.0).double()
    x = ((torch.rand(2, 3, 2, 2, dtype=torch.float64) + 0.1) * sign).requires_grad_(True)
    b = (torch.randn(3, dtype=torch.float64) * 0.01).requires_grad_(True)
    for act in ("lrelu", "tanh", "softplus", "swish", "elu"):
        fn = lambda x, b: bias_act(x, b, act=act, clamp=100.0)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, b))
        assert torch.autograd.gradgradcheck(fn, (x, b))


@pytest.mark.parametrize("kwargs", [
    dict(f=[1, 3, 3, 1], up=2, padding=(2, 1, 2, 1)),
    dict(f=[1, 3, 3, 1], down=2, padding=1),
    dict(f=[[1, 2], [3, -1]], padding=(1, 0, -1, 1), flip_filter=True),
    dict(f=[1, 2, 3, 4, 4, 3, 2, 1], up=2, down=1, padding=4),  # separable
])
def test_gradcheck_upfirdn2d(kwargs):
    kwargs = dict(kwargs)
    f = setup_filter(kwargs.pop("f")).double()
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    fn = lambda x: upfirdn2d(x, f, **kwargs)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("k,p,groups", [(3, 1, 1), (1, 0, 1), (3, 0, 2), (4, 1, 2)])
def test_conv2d_resample_equivalences(k, p, groups):
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(2, 4, 8, 10, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64)
    # Up: exactly upsample-then-conv (conv padding taken from the upsampled image).
    got = conv2d_resample(x, w, f, up=2, padding=p, groups=groups)
    torch.testing.assert_close(got, F.conv2d(upsample2d(x, f, padding=p), w, groups=groups))
    # Down: filter-then-strided-conv, equal to conv-then-downsample away from the borders.
    got = conv2d_resample(x, w, f, down=2, padding=p, groups=groups)
    ref = downsample2d(F.conv2d(x, w, padding=p, groups=groups), f)
    assert got.shape == ref.shape
    torch.testing.assert_close(got[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2])
    torch.testing.assert_close(conv2d_resample(x, w, padding=p, groups=groups),
                               F.conv2d(x, w, padding=p, groups=groups))


def test_impl_selection():
    x = torch.randn(1, 2, 4, 4)
    f = setup_filter([1, 3, 3, 1])
    w = torch.randn(3, 2, 3, 3)
    calls = {
        "bias_act": lambda impl: bias_act(x, impl=impl),
        "upfirdn2d": lambda impl: upfirdn2d(x, f, impl=impl),
        "upsample2d": lambda impl: upsample2d(x, f, impl=impl),
        "downsample2d": lambda impl: downsample2d(x, f, impl=impl),
        "filter2d": lambda impl: filter2d(x, f, impl=impl),
        "conv2d_resample": lambda impl: conv2d_resample(x, w, f, up=2, padding=1,
                                                        impl=impl),
        "modulated_conv2d": lambda impl: modulated_conv2d(x, w, torch.ones(1, 2),
                                                          impl=impl),
    }
    for name, call in calls.items():
        torch.testing.assert_close(call("auto"), call("ref"), msg=name)
        with pytest.raises(ValueError, match="impl='cuda' runs on CUDA tensors"):
            call("cuda")
        with pytest.raises(ValueError, match="unknown impl"):
            call("triton")
