"""The native kernels as torch.library custom ops (ganzoo::bias_act, ganzoo::bias_act_grad,
ganzoo::bias_act_grad2, ganzoo::upfirdn2d): ``torch.library.opcheck`` of each (schema,
autograd registration, fake implementation against the real output's shape, dtype and
strides, and an AOTAutograd trace with dynamic shapes, gradients included) over shapes,
dtypes, biases, clamps, geometries and layouts; the ops equal the kernels they wrap; and
torch.compile traces StyleGAN2-ADA's G (mapping + synthesis) and D, forward and backward, in
one graph, with the native kernels ("auto") and with the reference ops ("ref").

Uses the session's one build of the C++ CPU extension (tests/conftest.py); skipped when it
cannot be built (or GANZOO_TEST_SKIP_NATIVE=1), except the "ref" graph-break test.
"""
from __future__ import annotations

import os
import sys

import pytest
import torch

from ganzoo.ops import build, setup_filter

CPU = build.CPU_EXTENSION
DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float64, id="fp64")]


@pytest.fixture(scope="module")
def kernels(request):
    """The loaded C++ CPU kernels, or a skip saying why they are unavailable."""
    if os.environ.get("GANZOO_TEST_SKIP_NATIVE") == "1":
        pytest.skip("GANZOO_TEST_SKIP_NATIVE=1")
    if build.loaded(CPU) is None and (problem := build.toolchain_problem(CPU)) is not None:
        pytest.skip(f"the C++ ops cannot be built here: {problem}")
    try:
        request.getfixturevalue("native")
    except build.OpBuildError as e:
        pytest.skip(f"the C++ ops did not build: {e}")
    return build.loaded(CPU)


def opcheck(op, args, test_utils=None):
    kw = {} if test_utils is None else {"test_utils": test_utils}
    result = torch.library.opcheck(op, args, **kw)
    assert all(v == "SUCCESS" for v in result.values()), result


def layout(x: torch.Tensor, name: str) -> torch.Tensor:
    """x's values as contiguous, channels-last, permuted (dense, neither) or strided (a view
    that is not dense: the kernels copy it to contiguous first)."""
    if name == "contiguous":
        return x.contiguous()
    if name == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if name == "permuted":
        return x.permute(2, 0, 3, 1).contiguous().permute(1, 3, 0, 2)
    wide = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)
    wide[..., ::2] = x
    return wide[..., ::2]


# -- bias_act --------------------------------------------------------------------------------

BIAS_ACT_CASES = {  # shape, dim of the bias (None: no bias), layout
    "nchw": ([2, 3, 4, 5], 1, "contiguous"),
    "nchw_channels_last": ([2, 3, 4, 5], 1, "channels_last"),
    "nchw_permuted": ([2, 3, 4, 5], 1, "permuted"),
    "nchw_strided_no_bias": ([2, 3, 4, 5], None, "strided"),
    "fc": ([6, 7], 1, "contiguous"),
    "last_axis": ([2, 3, 4, 5], 3, "contiguous"),
    "flat_no_bias": ([9], None, "contiguous"),
}


def bias_act_args(case, dtype, act, clamp, requires_grad=True, seed=0):
    shape, dim, lay = BIAS_ACT_CASES[case]
    gen = torch.Generator().manual_seed(seed)
    x = layout(torch.randn(shape, dtype=dtype, generator=gen) * 2, lay)
    b = None if dim is None else torch.randn(shape[dim], dtype=dtype, generator=gen)
    x.requires_grad_(requires_grad)
    if b is not None:
        b.requires_grad_(requires_grad)
    params = (0 if dim is None else dim, act, 0.2 if act == "lrelu" else 1.0,
              1.4 if act == "lrelu" else 0.7, -1.0 if clamp is None else clamp)
    return x, b, params


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clamp", [None, 0.8], ids=["noclamp", "clamp"])
@pytest.mark.parametrize("case", sorted(BIAS_ACT_CASES))
def test_opcheck_bias_act(kernels, case, clamp, dtype):
    act = "lrelu" if clamp is None else "tanh"     # piecewise linear, and smooth
    x, b, params = bias_act_args(case, dtype, act, clamp)
    opcheck(torch.ops.ganzoo.bias_act.default, (x, b, *params))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["nchw", "nchw_channels_last", "nchw_strided_no_bias", "fc"])
def test_opcheck_bias_act_grad(kernels, case, dtype):
    """The first derivative (differentiable again: wrt dy, and wrt x and b through G''). The
    gradient comes contiguous whatever x's layout; the output follows x's."""
    for act, clamp in (("lrelu", None), ("tanh", 0.8), ("swish", None)):
        x, b, params = bias_act_args(case, dtype, act, clamp)
        dy = torch.randn(x.shape, dtype=dtype, requires_grad=True)
        opcheck(torch.ops.ganzoo.bias_act_grad.default, (dy, x, b, *params))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["nchw", "nchw_channels_last", "fc"])
def test_opcheck_bias_act_grad2(kernels, case, dtype):
    """The second derivative, the kernels' last order: fully checked without gradients, and
    its autograd registration (which refuses a third order) with them."""
    for act, clamp in (("tanh", None), ("softplus", 0.8)):
        x, b, params = bias_act_args(case, dtype, act, clamp, requires_grad=False)
        dy, ddx = torch.randn(x.shape, dtype=dtype), torch.randn(x.shape, dtype=dtype)
        opcheck(torch.ops.ganzoo.bias_act_grad2.default, (ddx, dy, x, b, *params))
        grads = [t.requires_grad_() for t in (ddx, dy, x, b) if t is not None]
        assert grads
        opcheck(torch.ops.ganzoo.bias_act_grad2.default, (ddx, dy, x, b, *params),
                test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_bias_act_ops_equal_the_kernel_they_wrap(kernels):
    """Bit for bit: the op, its gradient op and the eager fast path call the same kernel."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    b, dy, ddx = torch.randn(3), torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    p = (1, "swish", 1.0, 1.0, 0.9)
    k = kernels.bias_act
    ops = torch.ops.ganzoo
    for got, want in [(ops.bias_act(x, b, *p), k(x, b, None, None, *p, 0)),
                      (ops.bias_act_grad(dy, x, b, *p), k(x, b, dy, None, *p, 1)),
                      (ops.bias_act_grad2(ddx, dy, x, b, *p), k(x, b, ddx, dy, *p, 2))]:
        assert torch.equal(got, want) and got.stride() == want.stride()
    # Autograd: bias_act's gradient is bias_act_grad's output, and the bias's its sum.
    xg, bg = x.clone().requires_grad_(), b.clone().requires_grad_()
    gx, gb = torch.autograd.grad(ops.bias_act(xg, bg, *p), (xg, bg), dy)
    assert torch.equal(gx, k(x, b, dy, None, *p, 1))
    assert torch.equal(gb, k(x, b, dy, None, *p, 1).sum(dim=[0, 2, 3]))


def test_bias_act_op_refuses_a_third_order(kernels):
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    y = torch.ops.ganzoo.bias_act(x, None, 0, "tanh", 0.0, 1.0, -1.0)
    g, = torch.autograd.grad(y.sum(), x, create_graph=True)
    gg, = torch.autograd.grad(g.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="second order"):
        torch.autograd.grad(gg.sum(), x)


# -- upfirdn2d -------------------------------------------------------------------------------

UPFIRDN_CASES = {  # filter, up (x, y), down (x, y), pad (x0, x1, y0, y1)
    "up2": ("1331", [2, 2], [1, 1], [2, 1, 2, 1]),          # upsample2d's geometry
    "down2": ("1331", [1, 1], [2, 2], [1, 1, 1, 1]),        # downsample2d's
    "filter": ("1331", [1, 1], [1, 1], [2, 1, 2, 1]),       # filter2d's
    "separable_up4": ("sep5", [4, 4], [1, 1], [3, 2, 4, 1]),
    "asymmetric": ("2x3", [2, 1], [1, 2], [3, 0, 1, 2]),
    "crop": ("2x3", [1, 1], [1, 1], [-2, 3, 1, -1]),
    "up_and_down": ("sep5", [4, 2], [2, 4], [1, -1, 0, 2]),
    "identity_down3": ("identity", [1, 1], [3, 3], [0, 0, 0, 0]),
}
FILTERS = {
    "1331": lambda: setup_filter([1, 3, 3, 1]),
    "sep5": lambda: setup_filter([1, 3, 5, 3, 1], separable=True),
    "2x3": lambda: torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]),
    "identity": lambda: torch.ones(1, 1),
}


@pytest.mark.parametrize("lay,dtype", [("contiguous", torch.float32),
                                       ("channels_last", torch.float32),
                                       ("strided", torch.float32),
                                       ("contiguous", torch.float64)],
                         ids=["contiguous-fp32", "channels_last-fp32", "strided-fp32",
                              "contiguous-fp64"])
@pytest.mark.parametrize("case", sorted(UPFIRDN_CASES))
def test_opcheck_upfirdn2d(kernels, case, lay, dtype):
    fname, up, down, pad = UPFIRDN_CASES[case]
    gen = torch.Generator().manual_seed(0)
    f = FILTERS[fname]()
    x = layout(torch.randn(2, 3, 7, 6, dtype=dtype, generator=gen), lay).requires_grad_()
    flip = dtype == torch.float64      # a correlation in one dtype, a convolution in the other
    opcheck(torch.ops.ganzoo.upfirdn2d.default, (x, f, up, down, pad, flip, 2.5))


@pytest.mark.parametrize("shape", [[2, 1, 5, 4], [2, 3, 1, 1], [1, 4, 3, 3]],
                         ids=["one_channel", "one_pixel", "one_image"])
def test_opcheck_upfirdn2d_degenerate_layouts(kernels, shape):
    """Tensors that are contiguous and channels-last at once: the kernels write NCHW."""
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_()
    opcheck(torch.ops.ganzoo.upfirdn2d.default,
            (x, setup_filter([1, 3, 3, 1]), [2, 2], [1, 1], [2, 1, 2, 1], False, 4.0))


def test_upfirdn2d_op_equals_the_kernel_it_wraps(kernels):
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 3, 6, 5).contiguous(memory_format=torch.channels_last)
    args = ([2, 2], [1, 1], [2, 1, 2, 1], False, 4.0)
    got = torch.ops.ganzoo.upfirdn2d(x, f, *args)
    want = kernels.upfirdn2d(x, f, *args)
    assert torch.equal(got, want) and got.stride() == want.stride()


# -- torch.compile over the networks ---------------------------------------------------------

def tiny_networks():
    """StyleGAN2-ADA's `--cfg tiny` networks at 16x16, conditional on 2 classes (so the label
    embedding and D's projection are traced too)."""
    from ganzoo import DataSpec
    from ganzoo_plugins.stylegan2_ada.config import StyleGAN2ADAConfig, resolve
    from ganzoo_plugins.stylegan2_ada.model import network_spec
    from ganzoo_plugins.stylegan2_ada.networks import Discriminator, Generator
    config = resolve(StyleGAN2ADAConfig(cfg="tiny", cond=True), 16)
    spec = network_spec(config, DataSpec(resolution=16, channels=3, num_classes=2))
    torch.manual_seed(0)
    return Generator(spec), Discriminator(spec), spec


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["auto", "ref"])
def test_networks_trace_in_one_graph_forward_and_backward(impl, request, monkeypatch):
    """G.mapping (updating w_avg) -> G.synthesis (random noise) -> D, traced by dynamo with no
    graph break; compiled with fullgraph=True (AOTAutograd, which traces the backward too) the
    loss and every parameter's gradient equal eager mode's. "auto" runs the native kernels as
    the ganzoo:: custom ops, forward and backward; "ref" runs no kernel."""
    if impl == "auto":
        request.getfixturevalue("kernels")
        monkeypatch.delenv("GANZOO_OPS_IMPL", raising=False)
    else:
        monkeypatch.setenv("GANZOO_OPS_IMPL", "ref")
    calls = []
    BA = sys.modules["ganzoo.ops.bias_act"]
    real = BA.native_ops
    monkeypatch.setattr(BA, "native_ops", lambda x: calls.append(1) or real(x))
    G, D, spec = tiny_networks()
    z = torch.randn(4, spec.z_dim)
    c = torch.eye(2)[torch.tensor([0, 1, 1, 0])]

    def step(z, c):
        ws = G.mapping(z, c, update_emas=True)
        img = G.synthesis(ws)
        return torch.nn.functional.softplus(-D(img, c)).mean()

    torch._dynamo.reset()
    try:
        explained = torch._dynamo.explain(step)(z, c)
        assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
        assert explained.graph_count == 1
        targets = {str(n.target) for g in explained.graphs for n in g.graph.nodes
                   if n.op == "call_function"}
        ganzoo_ops = {t for t in targets if t.startswith("ganzoo.")}
        assert ganzoo_ops == ({"ganzoo.bias_act", "ganzoo.upfirdn2d"} if impl == "auto"
                              else set())

        params = list(G.parameters()) + list(D.parameters())
        calls.clear()

        def loss_and_grads(fn):
            torch.manual_seed(1)    # the same noise in both runs
            for p in params:
                p.grad = None
            loss = fn(z, c)
            loss.backward()
            return [loss.detach()] + [p.grad for p in params]

        eager = loss_and_grads(step)
        eager_calls = len(calls)
        compiled = loss_and_grads(torch.compile(step, backend="aot_eager", fullgraph=True))
        assert (len(calls) - eager_calls == eager_calls) and (eager_calls > 0) == (impl == "auto")
        for got, want in zip(compiled, eager):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    finally:
        torch._dynamo.reset()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(torch._dynamo.config, "trace_autograd_ops"),
                    reason="dynamo traces torch.autograd.grad from torch 2.11 on")
@pytest.mark.parametrize("impl", ["auto", "ref"])
def test_r1_double_backward_traces_in_one_graph(impl, request, monkeypatch):
    """R1's gradient penalty (D's input gradient, itself differentiated into D's weights)
    compiled with fullgraph=True equals eager mode: the ops' autograd formulas are traceable
    to second order. Needs dynamo's trace_autograd_ops (AOTAutograd cannot differentiate a
    compiled graph twice, so the inner torch.autograd.grad must be inside the graph)."""
    if impl == "auto":
        request.getfixturevalue("kernels")
        monkeypatch.delenv("GANZOO_OPS_IMPL", raising=False)
    else:
        monkeypatch.setenv("GANZOO_OPS_IMPL", "ref")
    _, D, spec = tiny_networks()
    c = torch.eye(2)[torch.tensor([0, 1, 1, 0])]
    reals = torch.randn(4, spec.channels, spec.resolution, spec.resolution)
    params = list(D.parameters())

    def r1(x):
        (g,) = torch.autograd.grad(D(x, c).sum(), x, create_graph=True)
        return g.square().sum()

    def penalty_and_grads(fn):
        for p in params:
            p.grad = None
        loss = fn(reals.clone().requires_grad_())
        loss.backward()
        return [loss.detach()] + [torch.zeros_like(p) if p.grad is None else p.grad
                                  for p in params]

    torch._dynamo.reset()
    try:
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            eager = penalty_and_grads(r1)
            compiled = penalty_and_grads(torch.compile(r1, backend="aot_eager", fullgraph=True))
        for got, want in zip(compiled, eager):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    finally:
        torch._dynamo.reset()


# -- the same registrations on CUDA (skipped without a GPU) -------------------------------------

@pytest.fixture(scope="module")
def cuda_kernels():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    try:
        return build.load(build.BY_DEVICE["cuda"])
    except build.OpBuildError as e:
        pytest.skip(f"the CUDA ops did not build: {e}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64],
                         ids=["fp16", "fp32", "fp64"])
@pytest.mark.parametrize("lay", ["contiguous", "channels_last"])
def test_opcheck_cuda_ops(cuda_kernels, lay, dtype):
    """bias_act (and its two derivatives) and upfirdn2d's resampling geometries, on CUDA."""
    x, b, params = bias_act_args("nchw", torch.float64, "lrelu", 0.8)
    x = layout(x.detach(), lay).to("cuda", dtype).requires_grad_()
    b = b.detach().to("cuda", dtype).requires_grad_()
    opcheck(torch.ops.ganzoo.bias_act.default, (x, b, *params))
    dy = torch.randn(x.shape, device="cuda", dtype=dtype, requires_grad=True)
    opcheck(torch.ops.ganzoo.bias_act_grad.default, (dy, x, b, *params))
    f = setup_filter([1, 3, 3, 1]).cuda()
    for case in ("up2", "down2", "filter"):
        _, up, down, pad = UPFIRDN_CASES[case]
        x = layout(torch.randn(2, 8, 7, 6, dtype=torch.float64), lay)
        x = x.to("cuda", dtype).requires_grad_()
        opcheck(torch.ops.ganzoo.upfirdn2d.default, (x, f, up, down, pad, False, 2.0))
