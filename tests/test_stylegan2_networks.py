"""StyleGAN2-ADA networks: layer-for-layer parity with the official 64x64 auto config (Appendix B
of ../shared/seeds/001_*.txt), modulated convolution against its definition, mapping and noise
behaviour, conditional networks, and gradients (R1's double backward) at a tiny size."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganzoo.ops import modulated_conv2d, setup_filter, upsample2d
from ganzoo_plugins.stylegan2_ada import networks
from ganzoo_plugins.stylegan2_ada.networks import (Discriminator, Generator, MinibatchStdLayer,
                                                   NetworkSpec)
from ganzoo_plugins.stylegan2_ada.summary import network_summary

# Appendix B as printed by the official code for a batch of 32 (name, params, buffers, shape,
# dtype). The dtypes are those of a CUDA run with the top 4 resolutions in fp16.
APPENDIX_B_G = """
mapping.fc0	262656	-	[32, 512]	float32
mapping.fc1	262656	-	[32, 512]	float32
mapping	-	512	[32, 10, 512]	float32
synthesis.b4.conv1	2622465	32	[32, 512, 4, 4]	float32
synthesis.b4.torgb	264195	-	[32, 3, 4, 4]	float32
synthesis.b4:0	8192	16	[32, 512, 4, 4]	float32
synthesis.b4:1	-	-	[32, 512, 4, 4]	float32
synthesis.b8.conv0	2622465	80	[32, 512, 8, 8]	float16
synthesis.b8.conv1	2622465	80	[32, 512, 8, 8]	float16
synthesis.b8.torgb	264195	-	[32, 3, 8, 8]	float16
synthesis.b8:0	-	16	[32, 512, 8, 8]	float16
synthesis.b8:1	-	-	[32, 512, 8, 8]	float32
synthesis.b16.conv0	2622465	272	[32, 512, 16, 16]	float16
synthesis.b16.conv1	2622465	272	[32, 512, 16, 16]	float16
synthesis.b16.torgb	264195	-	[32, 3, 16, 16]	float16
synthesis.b16:0	-	16	[32, 512, 16, 16]	float16
synthesis.b16:1	-	-	[32, 512, 16, 16]	float32
synthesis.b32.conv0	2622465	1040	[32, 512, 32, 32]	float16
synthesis.b32.conv1	2622465	1040	[32, 512, 32, 32]	float16
synthesis.b32.torgb	264195	-	[32, 3, 32, 32]	float16
synthesis.b32:0	-	16	[32, 512, 32, 32]	float16
synthesis.b32:1	-	-	[32, 512, 32, 32]	float32
synthesis.b64.conv0	1442561	4112	[32, 256, 64, 64]	float16
synthesis.b64.conv1	721409	4112	[32, 256, 64, 64]	float16
synthesis.b64.torgb	132099	-	[32, 3, 64, 64]	float16
synthesis.b64:0	-	16	[32, 256, 64, 64]	float16
synthesis.b64:1	-	-	[32, 256, 64, 64]	float32
"""
APPENDIX_B_D = """
b64.fromrgb	1024	16	[32, 256, 64, 64]	float16
b64.skip	131072	16	[32, 512, 32, 32]	float16
b64.conv0	590080	16	[32, 256, 64, 64]	float16
b64.conv1	1180160	16	[32, 512, 32, 32]	float16
b64	-	16	[32, 512, 32, 32]	float16
b32.skip	262144	16	[32, 512, 16, 16]	float16
b32.conv0	2359808	16	[32, 512, 32, 32]	float16
b32.conv1	2359808	16	[32, 512, 16, 16]	float16
b32	-	16	[32, 512, 16, 16]	float16
b16.skip	262144	16	[32, 512, 8, 8]	float16
b16.conv0	2359808	16	[32, 512, 16, 16]	float16
b16.conv1	2359808	16	[32, 512, 8, 8]	float16
b16	-	16	[32, 512, 8, 8]	float16
b8.skip	262144	16	[32, 512, 4, 4]	float16
b8.conv0	2359808	16	[32, 512, 8, 8]	float16
b8.conv1	2359808	16	[32, 512, 4, 4]	float16
b8	-	16	[32, 512, 4, 4]	float16
b4.mbstd	-	-	[32, 513, 4, 4]	float32
b4.conv	2364416	16	[32, 512, 4, 4]	float32
b4.fc	4194816	-	[32, 512]	float32
b4.out	513	-	[32, 1]	float32
"""
# The printed table gives the image outputs (synthesis.bN:1) the shape of x (bN:0), channels
# included, though its own toRGB rows show the image has 3; the table's printer apparently
# showed a tuple's first shape on every line of it (the dtypes do differ). The checks below
# expect 3 channels there; see test_appendix_img_rows_quirk.
TINY = NetworkSpec(resolution=32, channels=3, channel_base=512, channel_max=64, z_dim=64,
                   w_dim=64)


def parse_table(text: str) -> list[tuple[str, int, int, list[int], str]]:
    rows = []
    for line in text.strip().splitlines():
        name, params, buffers, shape, dtype = line.split("\t")
        count = lambda s: 0 if s == "-" else int(s)  # noqa: E731
        rows.append((name, count(params), count(buffers),
                     [int(v) for v in shape.strip("[]").split(", ")], dtype))
    return rows


@pytest.fixture(scope="module")
def nets64():
    torch.manual_seed(0)
    spec = NetworkSpec(resolution=64, channels=3)
    return Generator(spec), Discriminator(spec)


@pytest.fixture(scope="module")
def summaries64(nets64):
    G, D = nets64
    c = torch.zeros(2, 0)
    return (network_summary(G, torch.randn(2, 512), c),
            network_summary(D, torch.randn(2, 3, 64, 64), c))


def expected_shape(name: str, shape: list[int], batch: int) -> tuple[int, ...]:
    if name.startswith("synthesis.b") and name.endswith(":1"):
        shape = [shape[0], 3, *shape[2:]]
    return (batch, *shape[1:])


@pytest.mark.parametrize("which", ["G", "D"])
def test_summary_matches_appendix_b(nets64, summaries64, which):
    net = nets64[which == "D"]
    summary = summaries64[which == "D"]
    table = parse_table(APPENDIX_B_G if which == "G" else APPENDIX_B_D)
    assert [r.name for r in summary.rows] == [t[0] for t in table]
    for row, (name, params, buffers, shape, _) in zip(summary.rows, table):
        assert (row.params, row.buffers) == (params, buffers), name
        assert row.shape == expected_shape(name, shape, batch=2), name
        assert row.dtype == torch.float32, name  # CPU: everything float32
    totals = {"G": (22_243_608, 11_632), "D": (23_407_361, 288)}[which]
    assert (summary.total_params, summary.total_buffers) == totals
    assert sum(p.numel() for p in net.parameters()) == totals[0]
    assert sum(b.numel() for b in net.buffers()) == totals[1]


def test_appendix_img_rows_quirk():
    """Every synthesis.bN:1 row of the printed table repeats the shape of bN:0; the toRGB row
    just above it says the image has 3 channels, which is what our networks output."""
    rows = {r[0]: r for r in parse_table(APPENDIX_B_G)}
    for res in (4, 8, 16, 32, 64):
        assert rows[f"synthesis.b{res}:1"][3] == rows[f"synthesis.b{res}:0"][3]
        assert rows[f"synthesis.b{res}.torgb"][3][1] == 3


def planned_dtype(G: Generator, D: Discriminator, which: str, name: str) -> str:
    """The dtype a CUDA run would give the row: float16 inside a block planned in fp16,
    except the image a synthesis block passes on (always float32)."""
    if which == "G":
        if not name.startswith("synthesis.b") or name.endswith(":1"):
            return "float32"
        block = getattr(G.synthesis, name.split(".")[1].split(":")[0])
    else:
        block = getattr(D, name.split(".")[0])
    return "float16" if block.use_fp16 else "float32"


def test_planned_precision_matches_appendix_b(nets64):
    G, D = nets64
    for which, text in (("G", APPENDIX_B_G), ("D", APPENDIX_B_D)):
        for name, *_, dtype in parse_table(text):
            assert planned_dtype(G, D, which, name) == dtype, (which, name)
    no_fp16 = NetworkSpec(resolution=64, channels=3, num_fp16_res=0)
    assert not any(no_fp16.uses_fp16(r) for r in no_fp16.block_resolutions)


def test_fp16_blocks_compute_in_fp16_where_enabled(monkeypatch):
    """The dtypes of a run with fp16 enabled (on CPU here, by allowing it there) are the
    planned ones; gradients reach the float32 parameters."""
    monkeypatch.setattr(networks, "FP16_DEVICES", ("cuda", "cpu"))
    torch.manual_seed(0)
    spec = NetworkSpec(resolution=32, channels=3, channel_base=512, channel_max=64, z_dim=64,
                       w_dim=64, num_fp16_res=2)
    G, D = Generator(spec), Discriminator(spec)
    c = torch.zeros(2, 0)
    z = torch.randn(2, 64)
    for which, net, inputs in (("G", G, (z, c)), ("D", D, (torch.randn(2, 3, 32, 32), c))):
        rows = network_summary(net, *inputs).rows
        assert {r.dtype for r in rows} == {torch.float16, torch.float32}
        for r in rows:
            assert str(r.dtype).removeprefix("torch.") == planned_dtype(G, D, which, r.name), r.name
    img = G(z, c)
    logits = D(img, c)
    assert img.dtype == logits.dtype == torch.float32
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
               for p in G.parameters())
    assert G(z, c, noise_mode="const").dtype == torch.float32
    assert torch.isfinite(G.synthesis(G.mapping(z, c), force_fp32=True)).all()


def test_summary_format_is_the_appendix_layout(summaries64):
    text = summaries64[0].format()
    lines = text.splitlines()
    assert lines[0].split() == ["Generator", "Parameters", "Buffers", "Output", "shape",
                                "Datatype"]
    assert lines[1].split() == ["---"] * 5 and lines[-2].split() == ["---"] * 5
    assert lines[-1].split() == ["Total", "22243608", "11632", "-", "-"]
    assert lines[5].split() == ["synthesis.b4.conv1", "2622465", "32", "[2,", "512,", "4,",
                                "4]", "float32"]
    assert summaries64[1].format().splitlines()[0].startswith("Discriminator")


def modulated_weight(weight, style, demodulate):
    w = weight * style[None, :, None, None]
    if demodulate:
        w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
    return w


@pytest.mark.parametrize("k,up,demodulate", [(3, 1, True), (3, 2, True), (1, 1, False),
                                             (3, 2, False)])
@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv_equals_per_sample_loop(k, up, demodulate, fused):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 6, 7, dtype=torch.float64)
    weight = torch.randn(4, 5, k, k, dtype=torch.float64)
    styles = torch.randn(3, 5, dtype=torch.float64) + 1
    f = setup_filter([1, 3, 3, 1]).double()
    got = modulated_conv2d(x, weight, styles, demodulate=demodulate, up=up, resample_filter=f,
                           fused=fused)
    for n in range(3):
        w = modulated_weight(weight, styles[n], demodulate)
        if up == 1:
            ref = F.conv2d(x[n:n + 1], w, padding=k // 2)
        else:  # upsample (the conv's padding taken from the upsampled image), valid conv
            ref = F.conv2d(upsample2d(x[n:n + 1], f, padding=k // 2), w)
        torch.testing.assert_close(got[n:n + 1], ref)


def test_fused_and_non_fused_agree_with_gradients():
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1]).double()
    grads = []
    for fused in (True, False):
        torch.manual_seed(1)
        x = torch.randn(2, 4, 5, 5, dtype=torch.float64, requires_grad=True)
        weight = torch.randn(3, 4, 3, 3, dtype=torch.float64, requires_grad=True)
        styles = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
        y = modulated_conv2d(x, weight, styles, up=2, resample_filter=f, fused=fused)
        y.square().sum().backward()
        grads.append([y.detach(), x.grad, weight.grad, styles.grad])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("fused", [True, False])
def test_fp16_modulated_conv_survives_large_styles(fused):
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8, 8) * 100
    weight = torch.randn(8, 16, 3, 3)
    styles = torch.rand(2, 16) * 1000  # x * styles alone would overflow fp16 (max 65504)
    ref = modulated_conv2d(x, weight, styles, fused=fused)
    got = modulated_conv2d(x.half(), weight, styles, fused=fused)
    assert got.dtype == torch.float16 and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), ref, rtol=1e-2, atol=0.5)


def test_demodulation_gives_unit_output_std():
    torch.manual_seed(0)
    x = torch.randn(4, 64, 24, 24)
    weight = torch.randn(32, 64, 3, 3)
    styles = torch.rand(4, 64) * 3 + 0.1
    y = modulated_conv2d(x, weight, styles)[..., 1:-1, 1:-1]  # borders see zero padding
    assert abs(y.std().item() - 1) < 0.1
    per_sample = y.std(dim=[1, 2, 3])
    assert ((per_sample - 1).abs() < 0.1).all()
    undemodulated = modulated_conv2d(x, weight, styles, demodulate=False)
    assert undemodulated.std() > 5  # styles and fan-in scale it otherwise


def test_truncation_psi_zero_gives_w_avg():
    torch.manual_seed(0)
    G = Generator(TINY)
    z = torch.randn(4, TINY.z_dim)
    G.mapping(z, None, update_emas=True)
    assert G.mapping.w_avg.abs().sum() > 0  # moved off its zero start
    ws = G.mapping(torch.randn(4, TINY.z_dim), None, truncation_psi=0)
    assert ws.shape == (4, G.num_ws, TINY.w_dim)
    torch.testing.assert_close(ws, G.mapping.w_avg.expand_as(ws))
    cut = G.mapping(z, None, truncation_psi=0, truncation_cutoff=2)
    full = G.mapping(z, None)
    torch.testing.assert_close(cut[:, :2], G.mapping.w_avg.expand(4, 2, -1))
    torch.testing.assert_close(cut[:, 2:], full[:, 2:])
    half = G.mapping(z, None, truncation_psi=0.5)
    torch.testing.assert_close(half, (full + G.mapping.w_avg) / 2)


def test_w_avg_tracks_mean_with_beta():
    G = Generator(TINY)
    z = torch.randn(8, TINY.z_dim)
    w = G.mapping(z, None)[:, 0]
    G.mapping(z, None, update_emas=True)
    torch.testing.assert_close(G.mapping.w_avg, 0.005 * w.mean(0))


def test_noise_modes():
    torch.manual_seed(0)
    G = Generator(TINY).eval()
    for name, p in G.named_parameters():
        if name.endswith("noise_strength"):
            p.data.fill_(0.5)  # initialised to 0, which would hide the noise
    z = torch.randn(2, TINY.z_dim)
    with torch.no_grad():
        const = [G(z, None, noise_mode="const") for _ in range(2)]
        rand = [G(z, None, noise_mode="random") for _ in range(2)]
        none = G(z, None, noise_mode="none")
    assert torch.equal(const[0], const[1])
    assert not torch.equal(rand[0], rand[1])
    assert not torch.equal(none, const[0])
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, None, noise_mode="fixed")


def test_generator_init_noise_strength_zero_and_affine_bias_one():
    G = Generator(TINY)
    conv = G.synthesis.b8.conv0
    assert conv.noise_strength.item() == 0
    assert torch.all(conv.affine.bias == 1) and torch.all(G.synthesis.b8.torgb.affine.bias == 1)
    assert conv.noise_const.shape == (8, 8)
    # Mapping: stored N(0, 1) / 0.01, used with scale 0.01 / sqrt(fan_in).
    assert 50 < G.mapping.fc0.weight.std() < 150
    assert G.mapping.fc0.weight_gain == pytest.approx(0.01 / TINY.z_dim ** 0.5)


def test_conditional_networks_differ_by_class():
    torch.manual_seed(0)
    spec = NetworkSpec(resolution=32, channels=3, c_dim=5, channel_base=512, channel_max=64,
                       z_dim=64, w_dim=64)
    G, D = Generator(spec), Discriminator(spec)
    z = torch.randn(1, 64).repeat(2, 1)
    c = F.one_hot(torch.tensor([0, 3]), 5).float()
    with torch.no_grad():
        img = G(z, c, noise_mode="const")
        logits = D(img[:1].repeat(2, 1, 1, 1), c)
    assert img.shape == (2, 3, 32, 32) and img.dtype == torch.float32
    assert not torch.allclose(img[0], img[1])
    assert logits.shape == (2, 1) and not torch.allclose(logits[0], logits[1])
    assert D.mapping.w_dim == D.cmap_dim == 64
    with pytest.raises(ValueError, match="mapping c"):
        G(z, None)


def test_tiny_forward_backward_and_r1_double_backward():
    torch.manual_seed(0)
    G, D = Generator(TINY), Discriminator(TINY)
    c = torch.zeros(4, 0)
    img = G(torch.randn(4, TINY.z_dim), c)
    assert img.shape == (4, 3, 32, 32) and img.abs().max() < 10
    D(img, c).mean().backward()
    assert all(p.grad is not None for p in G.parameters() if p.requires_grad)
    # R1: penalty on the gradient of D's output w.r.t. real images, backpropagated into D.
    reals = torch.randn(4, 3, 32, 32, requires_grad=True)
    (grad,) = torch.autograd.grad(D(reals, c).sum(), reals, create_graph=True)
    D.zero_grad()
    grad.square().sum().backward()
    # Every weight gets a gradient (the output bias cannot: D's input gradient ignores it).
    weights = {n: p.grad for n, p in D.named_parameters() if n.endswith("weight")}
    assert all(g is not None and torch.isfinite(g).all() for g in weights.values())
    assert all(g.abs().sum() > 0 for g in weights.values())


def test_minibatch_stddev_groups():
    layer = MinibatchStdLayer(group_size=4)
    x = torch.randn(8, 6, 4, 4)
    y = layer(x)
    assert y.shape == (8, 7, 4, 4) and torch.equal(y[:, :6], x)
    # Sample n is grouped with n + 2, n + 4, n + 6 (stride N / G).
    expected = x[0::2].std(dim=0, unbiased=False).mean()
    torch.testing.assert_close(y[0, 6, 0, 0], expected, rtol=1e-4, atol=1e-6)
    assert layer(torch.randn(2, 6, 4, 4)).shape == (2, 7, 4, 4)  # group = min(4, N)
    with pytest.raises(ValueError, match="multiple of the group"):
        layer(torch.randn(6, 6, 4, 4))


def test_spec_and_input_checks():
    with pytest.raises(ValueError, match="power of two"):
        NetworkSpec(resolution=48, channels=3)
    G = Generator(TINY)
    assert (G.z_dim, G.c_dim, G.w_dim, G.num_ws, G.resolution) == (64, 0, 64, 8, 32)
    with pytest.raises(ValueError, match="mapping z"):
        G(torch.randn(2, 32), None)
    with pytest.raises(ValueError, match="synthesis ws"):
        G.synthesis(torch.randn(2, 3, 64))
    with pytest.raises(ValueError, match="discriminator img"):
        Discriminator(TINY)(torch.randn(2, 3, 16, 16), None)


def _images_logits_and_r1(G, D, z, c) -> list[torch.Tensor]:
    """G's images, D's logits, R1's input gradient and R1's gradient for D's first weights
    (R1's double backward through every D layer)."""
    img = G(z, c, noise_mode="const")
    x = img.detach().requires_grad_()
    logits = D(x, c)
    grad, = torch.autograd.grad(logits.sum(), x, create_graph=True)
    r1_grads = torch.autograd.grad(grad.square().sum(), list(D.parameters())[:4])
    return [img, logits, grad, *r1_grads]


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """||got - want|| / ||want||. (Not the largest deviation: rounding differences flip a few
    activations across lrelu's kink, which moves single gradient entries by a visible fraction;
    a first run measured 0.7% of the largest value for float32 networks.)"""
    want = want.double()
    return ((got.double() - want).norm() / want.norm().clamp_min(1e-30)).item()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_networks_with_cuda_ops_match_the_reference_ops(monkeypatch, tmp_path):
    """The 64x64 auto networks on a GPU, with the CUDA kernels against the reference ops.
    float32 networks: equal within float rounding. fp16 networks (top 4 resolutions): R1's
    gradients through fp16 layers are far from the float32 truth with either implementation
    (a first run measured 12% of the largest value between the two), so the CUDA kernels must
    be about as close to the float32 truth as the reference ops are. Errors are norms relative
    to the truth's norm."""
    from ganzoo.ops import build
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)   # exact float32 convs
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    build.load(build.CUDA_EXTENSION)
    torch.manual_seed(0)
    spec16 = NetworkSpec(resolution=64, channels=3)
    spec32 = NetworkSpec(resolution=64, channels=3, num_fp16_res=0)
    G16, D16 = Generator(spec16).cuda(), Discriminator(spec16).cuda()
    G32, D32 = Generator(spec32).cuda(), Discriminator(spec32).cuda()
    G32.load_state_dict(G16.state_dict())
    D32.load_state_dict(D16.state_dict())
    z = torch.randn(8, spec16.z_dim, device="cuda")
    c = torch.zeros(8, 0, device="cuda")
    runs = {}
    for impl in ("ref", "cuda"):
        monkeypatch.setenv("GANZOO_OPS_IMPL", impl)
        runs["fp32", impl] = _images_logits_and_r1(G32, D32, z, c)
        runs["fp16", impl] = _images_logits_and_r1(G16, D16, z, c)
    names = ["img", "logits", "r1 grad", "dW0", "dW1", "dW2", "dW3"]
    truth = runs["fp32", "ref"]
    for name, got, want in zip(names, runs["fp32", "cuda"], truth):
        err = _relative_error(got, want)
        print(f"{name}: float32 networks, cuda vs ref {err:.2e}")
        assert err < 1e-3, (name, err)
    for name, cuda, ref, want in zip(names, runs["fp16", "cuda"], runs["fp16", "ref"], truth):
        err_cuda, err_ref = _relative_error(cuda, want), _relative_error(ref, want)
        print(f"{name}: fp16 error vs float32, cuda {err_cuda:.2e}, ref {err_ref:.2e}")
        assert err_cuda <= 2 * err_ref + 1e-3, (name, err_cuda, err_ref)
