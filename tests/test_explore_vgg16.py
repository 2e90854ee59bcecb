"""`ganzoo project --extractor vgg16 --feature-weights FILE` (issue 20): the LPIPS-VGG16
distance read from a weights file the user has. The files here are made in the test:
VGG16's shapes with seeded random weights (59 MB, in the tmp directory), in torchvision's
layout and in the lpips package's, with and without LPIPS's channel weights; and bad files,
each refused in one line."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import ganzoo
from ganzoo import explore
from ganzoo.checkpoint import Progress, save_checkpoint
from ganzoo.errors import GanzooError
from ganzoo.explore.perceptual import VGG16Perceptual, load_vgg16
from ganzoo.testing import FeatureExtractorContract
from test_cli_errors import assert_one_line_error

# torchvision's vgg16.features: index of each 3x3 convolution, "M" a max-pool; the LPIPS
# taps (relu1_2 ... relu5_3) follow convolutions 2, 7, 14, 21 and 28. Written out here on
# its own, not taken from the module under test.
CONVS = [(0, 3, 64), (2, 64, 64), "M", (5, 64, 128), (7, 128, 128), "M", (10, 128, 256),
         (12, 256, 256), (14, 256, 256), "M", (17, 256, 512), (19, 512, 512), (21, 512, 512),
         "M", (24, 512, 512), (26, 512, 512), (28, 512, 512)]
TAPS = (2, 7, 14, 21, 28)
LPIPS_SLICES = [(0, 3), (4, 8), (9, 15), (16, 22), (23, 29)]      # net.slice1 .. slice5
LPIPS_CHANNELS = (64, 128, 256, 512, 512)


def random_vgg16(seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision's vgg16 state dict layout (features only), He-scaled random weights."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for item in CONVS:
        if item == "M":
            continue
        i, cin, cout = item
        state[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) \
            * (2 / (9 * cin)) ** 0.5
        state[f"features.{i}.bias"] = torch.randn(cout, generator=gen) * 0.01
    return state


def random_lin(seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen)
            for k, c in enumerate(LPIPS_CHANNELS)}


def lpips_layout(state: dict, lin: dict) -> dict:
    """The same weights as the lpips package's LPIPS(net='vgg').state_dict() lays them out."""
    out = {"scaling_layer.shift": torch.zeros(1, 3, 1, 1),
           "scaling_layer.scale": torch.ones(1, 3, 1, 1)}
    for key, value in state.items():
        index = int(key.split(".")[1])
        s = next(n for n, (lo, hi) in enumerate(LPIPS_SLICES, 1) if lo <= index <= hi)
        out[f"net.slice{s}.{index}.{key.split('.')[2]}"] = value
    for key, value in lin.items():
        out[key] = value
        out[key.replace("lin", "lins.", 1)] = value
    return out


def lpips_reference(state, lin, x, y) -> torch.Tensor:
    """LPIPS as its paper and package define it, computed directly from the state dict:
    ImageNet-normalised input, unit-normalised activations at the five taps, squared
    differences weighted per channel, averaged over pixels, summed over layers."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def taps(img):
        h, out = ((img + 1) / 2 - mean) / std, []
        for item in CONVS:
            if item == "M":
                h = F.max_pool2d(h, 2)
                continue
            i = item[0]
            h = F.relu(F.conv2d(h, state[f"features.{i}.weight"], state[f"features.{i}.bias"],
                                padding=1))
            if i in TAPS:
                out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    total = 0
    for k, (a, b) in enumerate(zip(taps(x), taps(y))):
        w = lin[f"lin{k}.model.1.weight"].view(1, -1, 1, 1)
        total = total + ((a - b) ** 2 * w).sum(1).mean((1, 2))
    return total


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("vgg16")
    state, lin = random_vgg16(), random_lin()
    files = {"torchvision": root / "vgg16-random.pth", "with-lin": root / "vgg16-lpips.pth",
             "lpips-model": root / "lpips-vgg-model.pth"}
    torch.save({**state, "classifier.0.weight": torch.zeros(2, 2)}, files["torchvision"])
    torch.save({**state, **lin}, files["with-lin"])
    torch.save(lpips_layout(state, lin), files["lpips-model"])
    return state, lin, files


@pytest.fixture(scope="module")
def stylegan_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = ganzoo.create("stylegan2-ada", ganzoo.DataSpec(32, 1), cfg="tiny")
    path = tmp_path_factory.mktemp("sg") / "sg.pt"
    save_checkpoint(path, arch=model, plugin="test", plugin_version="0", train={},
                    progress=Progress())
    return model, path


def images(seed: int, n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# -- the network --------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["with-lin", "lpips-model"])
def test_feature_distance_is_lpips(weights, layout):
    state, lin, files = weights
    net = load_vgg16(files[layout], resolution=32)
    assert net.lpips_weights and "LPIPS channel weights, 32 px" in net.weights_id
    x, y = images(1), images(2)
    with torch.no_grad():
        ours = (net(x) - net(y)).pow(2).sum(1)
        ref = lpips_reference(state, lin, x, y)
    assert torch.allclose(ours, ref, rtol=1e-4), (ours, ref)
    assert (ours > 0).all()


def test_torchvision_file_without_channel_weights_weighs_channels_equally(weights):
    state, _, files = weights
    net = load_vgg16(files["torchvision"], resolution=32)
    assert not net.lpips_weights and "uniform channel weights" in net.weights_id
    ones = {f"lin{k}.model.1.weight": torch.ones(1, c, 1, 1)
            for k, c in enumerate(LPIPS_CHANNELS)}
    x, y = images(3), images(4)
    with torch.no_grad():
        assert torch.allclose((net(x) - net(y)).pow(2).sum(1),
                              lpips_reference(state, ones, x, y), rtol=1e-4)


def test_projection_distance_has_a_gradient(weights):
    """What projection needs: pixel MSE + the relative feature distance, differentiable in
    the image, zero at the target."""
    net = load_vgg16(weights[2]["with-lin"], resolution=64)
    distance = explore.Distance(net, "vgg16", 1.0)
    target = images(5, 1)[:, :1]                       # grey, as the tiny model draws
    loss_of = distance.bind(target)
    assert loss_of(target).item() == pytest.approx(0, abs=1e-6)
    image = images(6, 1)[:, :1].requires_grad_(True)
    loss = loss_of(image)
    loss.backward()
    assert loss.item() > F.mse_loss(image, target).item()
    assert torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0


class TestVGG16Contract(FeatureExtractorContract):
    """The FeatureExtractor contract (shape, batch independence, named layers), at 32 px
    with PyTorch's initial weights."""

    extractor = VGG16Perceptual

    def make(self):
        return VGG16Perceptual(32)


# -- the command ----------------------------------------------------------------------------------

def target_png(model, tmp_path):
    from ganzoo.viz import to_uint8
    path = tmp_path / "target.png"
    Image.fromarray(to_uint8(model.generate(1, seed=3))[0, :, :, 0]).save(path)
    return path


@pytest.mark.parametrize("layout,extractor,says", [
    ("torchvision", "vgg16", "uniform channel weights, 64 px"),
    ("lpips-model", "vgg16:32", "LPIPS channel weights, 32 px"),
])
def test_project_with_feature_weights(cli, weights, stylegan_checkpoint, tmp_path, layout,
                                      extractor, says):
    model, ck = stylegan_checkpoint
    path = weights[2][layout]
    out = tmp_path / "p"
    r = cli("project", "--checkpoint", str(ck), "--target", str(target_png(model, tmp_path)),
            "--steps", "3", "--extractor", extractor, "--feature-weights", str(path),
            "--feature-lambda", "0.5", "--out", str(out))
    assert r.code == 0, r.err
    first = r.out.splitlines()[0]
    assert first.startswith(f"distance: pixel MSE + 0.5 x {extractor} [{path.name} (sha256 ")
    assert says in first, first
    assert (out / "projected_w.npz").exists() and (out / "target-projection.png").exists()


class NotWeights:
    """Loading this needs pickle to import and build a class: refused for weights."""


def bad_files(root, state):
    """name -> (file, words of the one-line refusal)."""
    # zeros expanded from one element: VGG16's shapes in a file of a few kB
    state = {k: torch.zeros(1).expand(v.shape) for k, v in state.items()}
    wrong_shape = dict(state)
    wrong_shape["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    partial = {k: v for k, v in state.items() if not k.startswith("features.28.")}
    files = {
        "text": ("hello, not weights", "unreadable as PyTorch weights"),
        "code": (None, "not a plain state dict"),
        "other-network": ({"fc.weight": torch.zeros(2, 2)}, "no features.0.weight"),
        "lin-only": (random_lin(), "LPIPS channel weights but no VGG16 convolutions"),
        "wrong-shape": (wrong_shape, "features.0.weight has shape (64, 1, 3, 3), expected "
                                     "(64, 3, 3, 3)"),
        "partial": (partial, "2 convolution tensors missing (e.g. features.28.weight)"),
        "prefixed": ({f"module.{k}": v for k, v in list(state.items())[:2]},
                     "its keys are like 'module.features.0.weight'"),
        "some-lin": ({**state, "lin0.model.1.weight": torch.ones(1, 64, 1, 1)},
                     "channel weights for 1 of the 5 layers"),
    }
    out = {}
    for name, (content, words) in files.items():
        path = root / f"{name}.pth"
        if isinstance(content, str):
            path.write_text(content)
        elif content is None:
            torch.save({"w": NotWeights()}, path)
        else:
            torch.save(content, path)
        out[name] = (path, words)
    return out


BAD = ["text", "code", "other-network", "lin-only", "wrong-shape", "partial", "prefixed",
       "some-lin"]


@pytest.fixture(scope="module")
def bad(tmp_path_factory, weights):
    return bad_files(tmp_path_factory.mktemp("bad"), weights[0])


@pytest.mark.parametrize("name", BAD)
def test_bad_weights_file_is_refused_in_one_line(cli, bad, stylegan_checkpoint, tmp_path, name):
    model, ck = stylegan_checkpoint
    path, words = bad[name]
    r = cli("project", "--checkpoint", str(ck), "--target", str(target_png(model, tmp_path)),
            "--steps", "2", "--extractor", "vgg16", "--feature-weights", str(path),
            "--out", str(tmp_path / "p"))
    assert_one_line_error(r, str(path), words)
    assert not (tmp_path / "p").exists()
    with pytest.raises(GanzooError, match="not|no |unreadable|LPIPS"):      # the API too
        load_vgg16(path)


@pytest.mark.parametrize("args,words", [
    (["--extractor", "vgg16"], "needs --feature-weights PATH"),
    (["--extractor", "vgg16", "--feature-weights", "missing.pth"], "missing.pth: no such file"),
    (["--extractor", "vgg16:33", "--feature-weights", "WEIGHTS"], "multiple of 16"),
    (["--extractor", "vgg16:big", "--feature-weights", "WEIGHTS"], "vgg16:big"),
    (["--extractor", "nosuch"], ("unknown feature extractor 'nosuch' (known: domain, ",
                                 ", vgg16)")),
    (["--feature-weights", "WEIGHTS"], "needs --extractor NAME"),
    (["--extractor", "domain:shapes", "--feature-weights", "WEIGHTS"],
     "--feature-weights does not apply to extractor 'domain'"),
])
def test_feature_weights_misuse_is_one_line(cli, weights, stylegan_checkpoint, tmp_path, args,
                                            words):
    model, ck = stylegan_checkpoint
    args = [str(weights[2]["torchvision"]) if a == "WEIGHTS" else a for a in args]
    r = cli("project", "--checkpoint", str(ck), "--target", str(target_png(model, tmp_path)),
            "--steps", "2", *args, "--out", str(tmp_path / "p"))
    assert_one_line_error(r, *((words,) if isinstance(words, str) else words))
    assert not (tmp_path / "p").exists()
