"""DeepDream: InceptionV1, the tiled gradient, seams, seeds, every option, weights files and
downloads, and the offline path `train deepdream` -> `generate deepdream`."""
from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.errors import GanzooError
from ganzoo_plugins.deepdream import inception_v1
from ganzoo_plugins.deepdream.dream import (DreamParams, dream, layer_objective, luminance,
                                            normalise, smooth_gradient, tile_spans,
                                            tiled_gradient)
from ganzoo_plugins.deepdream.inception_v1 import (LAYERS, inception_from_state_dict,
                                                   random_inception_v1, read_state_dict)
from ganzoo_plugins.deepdream.model import read_photo
from ganzoo_plugins.deepdream.photo import make_photo
from test_cli_errors import assert_one_line_error

# Fast settings for the end-to-end runs: a small photo, few steps.
QUICK = ["--iterations", "2", "--octaves", "1", "--step-size", "4"]


@pytest.fixture(scope="module")
def net():
    return random_inception_v1(seed=0).requires_grad_(False)


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    make_photo(160, 120, seed=1).save(path)
    return path


def photo_tensor(width: int, height: int, seed: int = 1) -> torch.Tensor:
    pixels = np.asarray(make_photo(width, height, seed=seed)).copy()
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1


# -- InceptionV1 --------------------------------------------------------------------------------

def test_inception_v1_follows_the_paper_table(net):
    """The seed's 12 layer names, the paper's depths and sizes (224 -> 112 ... 7), and exactly
    the parameter count of torchvision's GoogLeNet ImageNet weights (6,624,904)."""
    assert net.layer_names == ("conv2d0", "conv2d1", "conv2d2", "mixed3a", "mixed3b",
                               "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e",
                               "mixed5a", "mixed5b")
    with torch.no_grad():
        acts = net.activations(torch.zeros(1, 3, 224, 224), LAYERS)
    shapes = {name: tuple(a.shape[1:]) for name, a in acts.items()}
    assert shapes == {"conv2d0": (64, 112, 112), "conv2d1": (64, 56, 56),
                      "conv2d2": (192, 56, 56), "mixed3a": (256, 28, 28),
                      "mixed3b": (480, 28, 28), "mixed4a": (512, 14, 14),
                      "mixed4b": (512, 14, 14), "mixed4c": (512, 14, 14),
                      "mixed4d": (528, 14, 14), "mixed4e": (832, 14, 14),
                      "mixed5a": (832, 7, 7), "mixed5b": (1024, 7, 7)}
    assert sum(p.numel() for p in net.parameters()) == 6_624_904
    assert net(torch.zeros(2, 3, 224, 224)).shape == (2, 1024)


def to_torchvision_names(state: dict) -> dict:
    """Our names -> torchvision GoogLeNet's, written out independently of the loader."""
    branch = {"b1x1": "branch1", "b3x3_reduce": "branch2.0", "b3x3": "branch2.1",
              "b5x5_reduce": "branch3.0", "b5x5": "branch3.1", "pool_proj": "branch4.1"}
    top = {"conv2d0": "conv1", "conv2d1": "conv2", "conv2d2": "conv3", "classifier": "fc"}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] in top:
            parts[0] = top[parts[0]]
        else:
            parts[0] = parts[0].replace("mixed", "inception")
            parts[1] = branch[parts[1]]
        out[".".join(parts)] = value
    return out


def test_torchvision_state_dict_loads_under_the_seed_names(net, tmp_path):
    state = to_torchvision_names(net.state_dict())
    assert "inception4c.branch3.1.conv.weight" in state and "fc.weight" in state
    state["aux1.conv.conv.weight"] = torch.zeros(128, 512, 1, 1)   # training-only, dropped
    path = tmp_path / "googlenet.pth"
    torch.save(state, path)
    loaded = inception_from_state_dict(read_state_dict(path), str(path))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.activations(x, ["mixed4c"])["mixed4c"],
                           net.activations(x, ["mixed4c"])["mixed4c"])


def test_weights_with_wrong_keys_are_one_clear_line(cli, photo, tmp_path, net):
    wrong_keys = tmp_path / "wrong-keys.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, wrong_keys)
    r = cli("generate", "deepdream", "--input", str(photo), "--weights", str(wrong_keys))
    assert_one_line_error(r, "do not fit InceptionV1", "missing keys (conv2d0.conv.weight",
                          "1 unexpected keys (features.0.weight)")

    wrong_shape = tmp_path / "wrong-shape.pth"
    state = net.state_dict()
    state["mixed4c.b3x3.conv.weight"] = torch.zeros(7, 128, 3, 3)
    torch.save(to_torchvision_names(state), wrong_shape)
    r = cli("generate", "deepdream", "--input", str(photo), "--weights", str(wrong_shape))
    assert_one_line_error(r, "mixed4c.b3x3.conv.weight has shape (7, 128, 3, 3)")

    pickled = tmp_path / "pickled.pth"
    torch.save({"weights": GanzooError("needs pickle")}, pickled)
    r = cli("generate", "deepdream", "--input", str(photo), "--weights", str(pickled))
    assert_one_line_error(r, "need pickle code execution", "refused")

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    r = cli("generate", "deepdream", "--input", str(photo), "--weights", str(garbage))
    assert_one_line_error(r, "unreadable")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 that serves tmp_path/www, with GANZOO_MIRROR pointing at it
    (the download keeps the URL's path) and a fresh GANZOO_HOME."""
    pytest.importorskip("ganzoo.data.download")
    www = tmp_path / "www"
    (www / "models").mkdir(parents=True)
    handler = functools.partial(QuietHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("GANZOO_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("GANZOO_HOME", str(tmp_path / "home"))
    yield www / "models" / "googlenet-1378be20.pth"
    server.shutdown()


def test_download_with_a_wrong_hash_is_one_clear_line(cli, photo, net, weights_server,
                                                      tmp_path):
    torch.save(to_torchvision_names(net.state_dict()), weights_server)  # not the real file
    r = cli("generate", "deepdream", "--input", str(photo), *QUICK)
    assert r.code == 1 and "Traceback" not in r.err
    *progress, error = r.err.strip().splitlines()     # the download's own status line first
    assert error.startswith("error: ") and all("error" not in line for line in progress)
    for fragment in ("googlenet-1378be20.pth: sha256", "does not start with 1378be20",
                     "deleted it"):
        assert fragment in error
    assert not (tmp_path / "home" / "downloads" / "googlenet-1378be20.pth").exists()


def test_download_with_the_right_hash_dreams(cli, photo, net, weights_server, monkeypatch,
                                             tmp_path):
    torch.save(to_torchvision_names(net.state_dict()), weights_server)
    digest = hashlib.sha256(weights_server.read_bytes()).hexdigest()
    monkeypatch.setattr(inception_v1, "WEIGHTS_SHA256_PREFIX", digest[:8])
    r = cli("generate", "deepdream", "--input", str(photo), *QUICK, "--out", "dreams")
    assert r.code == 0, r.err
    assert (tmp_path / "home" / "downloads" / "googlenet-1378be20.pth").exists()
    assert Image.open(tmp_path / "dreams" / "photo-mixed4c-seed0000.png").size == (160, 120)


# -- the tiled gradient, seams, seeds -------------------------------------------------------------

def test_tiled_gradient_equals_the_whole_image_gradient_when_one_tile_covers_it(net):
    image = photo_tensor(128, 96)
    objective = layer_objective(net, "mixed4a", channels=(0, 1, 2, 3, 4, 5))
    whole = image.clone().requires_grad_(True)
    expected = torch.autograd.grad(objective(whole), whole)[0]
    for offset in [(0, 0), (37, 101)]:        # the random shift cannot split a covering tile
        tiled = tiled_gradient(image, objective, tile=128, offset=offset)
        torch.testing.assert_close(tiled, expected, rtol=1e-5, atol=1e-9)
    assert expected.abs().sum() > 0


@pytest.mark.parametrize("length,tile", [(300, 64), (1000, 512), (64, 64), (130, 128)])
def test_tile_spans_cover_the_picture_once_without_slivers(length, tile):
    for offset in range(0, tile, 7):
        spans = tile_spans(length, tile, offset)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        assert all(tile // 2 <= end - start < 2 * tile for start, end in spans) or \
            spans == [(0, length)]


def border_ratio(delta: torch.Tensor, tile: int) -> float:
    """Mean absolute difference of the dream's change (``delta``) between neighbouring pixels
    straddling a border of the unshifted tile grid (x or y a multiple of ``tile``), over the
    same between all other neighbours; horizontal and vertical pooled. 1.0: no seam."""
    at_border, elsewhere = [], []
    for dim in (-1, -2):
        n = delta.shape[dim]
        diffs = (delta.narrow(dim, 1, n - 1) - delta.narrow(dim, 0, n - 1)).abs()
        profile = diffs.mean(dim=[d for d in range(4) if d != dim % 4])
        border = torch.tensor([(j + 1) % tile == 0 for j in range(n - 1)])
        at_border.append(profile[border])
        elsewhere.append(profile[~border])
    return (torch.cat(at_border).mean() / torch.cat(elsewhere).mean()).item()


def test_no_seam_at_tile_borders(net):
    """Dream a 256x192 photo in 32 px tiles (10 steps of mixed3a). Control: the same steps on
    a fixed tile grid leave seams, lines of weaker change where the network saw a tile's edge
    (pixel differences across its borders < 0.9x those elsewhere; 0.86 measured). With the
    random shift of each step, the borders' ratio is within 8% of 1 (1.00 measured)."""
    image = photo_tensor(256, 192)
    params = DreamParams(layer="mixed3a", iterations=10, octaves=0, tile_size=32)
    objective = layer_objective(net, params.layer)
    shifted = dream(image, objective, params, seed=0)

    fixed = image.clone()
    for i in range(params.iterations):
        grad = tiled_gradient(fixed, objective, params.tile_size, offset=(0, 0))
        grad = smooth_gradient(grad, i / params.iterations)
        fixed = (fixed + params.step_size / 127.5 * normalise(grad)).clamp(-1, 1)

    seams, no_seams = border_ratio(fixed - image, 32), border_ratio(shifted - image, 32)
    print(f"difference across tile borders / elsewhere: fixed grid {seams:.3f}, "
          f"shifted {no_seams:.3f}")
    assert seams < 0.9
    assert abs(no_seams - 1) < 0.08


def test_same_seed_same_image(net):
    image = photo_tensor(96, 64)
    params = DreamParams(layer="mixed3a", iterations=3, octaves=1, tile_size=64)
    objective = layer_objective(net, params.layer)
    a = dream(image, objective, params, seed=5)
    b = dream(image, objective, params, seed=5)
    c = dream(image, objective, params, seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a - image).abs().mean() > 0.01       # it did dream


# -- every option, end to end ----------------------------------------------------------------------

@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_of_inception_v1_dreams(net, layer):
    image = photo_tensor(64, 48)
    params = DreamParams(layer=layer, iterations=1, octaves=1, rescale=0.7, tile_size=64)
    result = dream(image, layer_objective(net, layer), params, seed=0)
    assert result.shape == image.shape and torch.isfinite(result).all()
    assert not torch.equal(result, image)


def test_every_option_from_the_command_line(cli, photo, tmp_path):
    """Random-weight InceptionV1: layer, channels, octaves, rescale, blend, steps, a tile
    smaller than the photo, colour lock, GIF, two seeds."""
    r = cli("generate", "deepdream", "--weights", "random", "--input", str(photo),
            "--layer", "mixed3b", "--channels", "0-5,9", "--iterations", "2",
            "--step-size", "5", "--octaves", "1", "--rescale", "0.6", "--blend", "0.3",
            "--tile-size", "64", "--no-color", "--gif", "--seeds", "1-2", "--out", "dreams",
            "--device", "cpu")
    assert r.code == 0, r.err
    out = tmp_path / "dreams"
    assert sorted(p.name for p in out.iterdir()) == [
        "photo-mixed3b-seed0001.gif", "photo-mixed3b-seed0001.png",
        "photo-mixed3b-seed0002.gif", "photo-mixed3b-seed0002.png"]
    before = read_photo(photo)
    after = read_photo(out / "photo-mixed3b-seed0001.png")
    assert after.shape == before.shape
    assert (luminance(after) - luminance(before)).abs().mean() > 0.01
    # --no-color: only the luminance changed (up to 8-bit rounding and clipping).
    chroma = (after - luminance(after)) - (before - luminance(before))
    assert chroma.abs().mean() < 0.02
    with Image.open(out / "photo-mixed3b-seed0001.gif") as gif:
        assert gif.n_frames == 1 + 2 * 2          # the photo, then 2 octaves x 2 steps
        assert gif.size == (160, 120)


def test_deepdream_option_errors(cli, photo, tmp_path):
    base = ["generate", "deepdream", "--weights", "random"]
    assert_one_line_error(cli(*base), "needs --input PHOTO")
    assert_one_line_error(cli(*base, "--input", "nope.jpg"), "--input nope.jpg: no such file")
    (tmp_path / "bad.jpg").write_bytes(b"no image")
    assert_one_line_error(cli(*base, "--input", "bad.jpg"), "cannot read it as an image")
    assert_one_line_error(cli(*base, "--input", str(photo), "--layer", "inception4c"),
                          "no layer 'inception4c'", "conv2d0, conv2d1", "mixed5b")
    assert_one_line_error(cli(*base, "--input", str(photo), "--layer", "conv2d0",
                              "--channels", "60-70"), "layer conv2d0", "channels 0-63")
    assert_one_line_error(cli(*base, "--input", str(photo), "--channels", "a-b"),
                          "--channels 'a-b'")
    assert_one_line_error(cli(*base, "--input", str(photo), "--rescale", "1.5"),
                          "--rescale must be in (0, 1)")
    assert_one_line_error(cli(*base, "--input", str(photo), "--tile-size", "16"),
                          "--tile-size must be >= 32")
    assert_one_line_error(cli(*base, "--input", str(photo), "--class", "3"),
                          "--class does not apply to deepdream")


# -- offline: a trained classifier, a GAN's discriminator ----------------------------------

@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test's command."""
    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_train_deepdream_then_generate_without_download(cli, photo, tmp_path, no_network):
    r = cli("train", "deepdream", "--data", "shapes", "--resolution", "32", "--kimg", "0.256",
            "--batch", "32", "--width", "8", "-q")
    assert r.code == 0, r.err
    run = tmp_path / "runs" / "00000-deepdream-shapes"
    assert (run / "final.png").exists()
    stats = (run / "stats.jsonl").read_text()
    assert '"acc"' in stats and '"loss"' in stats

    r = cli("generate", "deepdream", "--checkpoint", "latest", "--input", str(photo), *QUICK,
            "--gif")
    assert r.code == 0, r.err
    assert "deepdream-classifier, layer conv4" in r.err
    assert Image.open(tmp_path / "generated" / "photo-conv4-seed0000.png").size == (160, 120)
    assert (tmp_path / "generated" / "photo-conv4-seed0000.gif").exists()

    # The GAN-style generate path refuses a deepdream run, pointing at its own options.
    assert_one_line_error(cli("generate"), "deepdream checkpoint",
                          "ganzoo generate deepdream --help")


def test_gan_discriminator_as_backbone(cli, photo, trained_run, no_network):
    r = cli("generate", "deepdream", "--checkpoint", str(trained_run), "--input", str(photo),
            "--layer", "conv2", *QUICK)
    assert r.code == 0, r.err
    assert "dcgan discriminator, layer conv2" in r.err
    r = cli("generate", "deepdream", "--checkpoint", str(trained_run), "--input", str(photo),
            "--layer", "mixed4c")
    assert_one_line_error(r, "no layer 'mixed4c'", "conv1, conv2, conv3, conv4")
    r = cli("generate", "deepdream", "--checkpoint", str(trained_run), "--input", str(photo),
            "--weights", "random")
    assert_one_line_error(r, "--weights is for InceptionV1")


@pytest.mark.slow
def test_classifier_learns_shapes():
    """`train deepdream`'s classifier at its defaults (64 px, 5 blocks from width 16, 10 kimg)
    tells the five shapes apart on held-out images (0.997 measured through the trainer)."""
    import ganzoo
    from ganzoo.data.shapes import make_shapes
    torch.manual_seed(0)
    train, test = make_shapes(5000, 64, seed=0), make_shapes(500, 64, seed=99)
    x = torch.from_numpy(train.images).float() / 127.5 - 1
    y = torch.from_numpy(train.labels)
    model = ganzoo.create("deepdream", ganzoo.DataSpec(64, 3, 5))
    gen = torch.Generator().manual_seed(0)
    for _ in range(round(model.default_kimg * 1000 / model.default_batch)):
        idx = torch.randint(0, len(x), (model.default_batch,), generator=gen)
        model.train_step(x[idx], y[idx])
    model.classifier.eval()
    with torch.no_grad():
        xt = torch.from_numpy(test.images).float() / 127.5 - 1
        accuracy = (model.classifier.logits(xt).argmax(1) ==
                    torch.from_numpy(test.labels)).float().mean().item()
    print(f"held-out accuracy {accuracy:.3f}")
    assert accuracy >= 0.85


LARGE_PHOTO = """
import resource, sys, torch
from ganzoo_plugins.deepdream.dream import DreamParams, dream, layer_objective
from ganzoo_plugins.deepdream.inception_v1 import random_inception_v1
torch.set_num_threads(2)
net = random_inception_v1().requires_grad_(False)
image = torch.rand(1, 3, 3000, 4000) * 2 - 1
params = DreamParams(layer="conv2d2", iterations=1, octaves=1, rescale=0.5, tile_size=512)
result = dream(image, layer_objective(net, params.layer), params, seed=0)
assert result.shape == image.shape
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


@pytest.mark.slow
def test_a_4000x3000_photo_fits_in_bounded_memory():
    """Tiles bound the network's memory: a 12-megapixel photo (full and half size, conv2d2)
    peaks below 2.5 GB of RSS (2.1 GB measured), most of it picture-sized tensors. Without
    tiles, conv2d0 to conv2d2 alone would hold about 4 GB of activations for the backward."""
    done = subprocess.run([sys.executable, "-c", LARGE_PHOTO], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.strip().splitlines()[-1])
    print(f"peak RSS {peak_mb} MB")
    assert peak_mb < 2500
