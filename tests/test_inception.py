"""The FID Inception-v3: shapes on random weights, and a loader that takes only the right file.
No internet: downloads come from a local HTTP server on 127.0.0.1 (GANZOO_MIRROR)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from ganzoo.data.source import ImageSet
from ganzoo.errors import GanzooError
from ganzoo.metrics import inception
from ganzoo.metrics.extract import ExtractorContext, build_extractor
from ganzoo.metrics.inception import FIDInceptionV3, load_inception, random_inception
from ganzoo.registry import Registry
from local_http import FileServer

WEIGHTS_PATH = "/mseitzer/pytorch-fid/releases/download/fid_weights/" \
               "pt_inception-2015-12-05-6726825d.pth"


@pytest.fixture(scope="module")
def net() -> FIDInceptionV3:
    return random_inception(seed=0)


@pytest.fixture(scope="module")
def weights_file(net, tmp_path_factory) -> Path:
    """A state dict laid out as the PyTorch port's file, with random values (95 MB)."""
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(net.state_dict(), path)
    return path


def test_random_network_gives_pool_features_and_logits_of_the_right_shapes(net):
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        feats, logits = net.features_and_logits(x)
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
    assert torch.isfinite(feats).all() and feats.std() > 0
    assert (feats >= 0).all()             # average of ReLU outputs


def test_state_dict_layout_is_the_pytorch_port():
    """94 conv+BN units x 6 tensors + fc weight and bias = 566 entries, as the published
    file holds, under the port's names."""
    state = FIDInceptionV3().state_dict()
    assert len(state) == 566
    assert state["fc.weight"].shape == (1008, 2048)
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert state["Mixed_6e.branch7x7dbl_5.conv.weight"].shape == (192, 192, 1, 7)
    assert "Mixed_5b.branch_pool.bn.running_var" in state
    assert not any(k.startswith("AuxLogits") for k in state)


def test_loads_a_state_dict_file(weights_file, net):
    loaded = load_inception(weights_file)
    x = torch.rand(1, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x))
    assert "sha256" in loaded.weights_id       # not the published file: recorded as such


def _error_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_rejects_wrong_keys_and_shapes(net, tmp_path):
    state = net.state_dict()
    renamed = dict(state)
    renamed["Mixed_7c.branch_pool_x.conv.weight"] = renamed.pop(
        "Mixed_7c.branch_pool.conv.weight")
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(GanzooError) as e:
        load_inception(tmp_path / "renamed.pth")
    assert "not the FID Inception-v3 weights" in _error_line(e)
    assert "missing" in str(e.value) and "unexpected" in str(e.value)

    reshaped = dict(state, **{"fc.weight": torch.zeros(1000, 2048)})
    torch.save(reshaped, tmp_path / "reshaped.pth")
    with pytest.raises(GanzooError, match=r"fc.weight has shape \(1000, 2048\)") as e:
        load_inception(tmp_path / "reshaped.pth")
    _error_line(e)


def test_rejects_files_that_need_pickle_code_or_are_not_torch_files(tmp_path):
    import argparse
    torch.save({"x": argparse.Namespace(a=1)}, tmp_path / "code.pth")   # needs pickle code
    with pytest.raises(GanzooError, match="pickle code execution") as e:
        load_inception(tmp_path / "code.pth")
    _error_line(e)
    (tmp_path / "text.pth").write_text("not weights")
    with pytest.raises(GanzooError, match="unreadable") as e:
        load_inception(tmp_path / "text.pth")
    _error_line(e)


def _context(**kw) -> ExtractorContext:
    data = ImageSet("x", torch.zeros(4, 3, 32, 32, dtype=torch.uint8).numpy())
    return ExtractorContext(Registry(), data, "x", **kw)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GANZOO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_download_with_a_wrong_hash_is_rejected_and_deleted(home, monkeypatch):
    srv = FileServer(files={WEIGHTS_PATH: b"these are not the weights you are looking for"})
    srv.start()
    monkeypatch.setenv("GANZOO_MIRROR", srv.base)
    try:
        with pytest.raises(GanzooError, match="sha256 mismatch") as e:
            build_extractor("inception", _context())
        _error_line(e)
    finally:
        srv.stop()
    assert srv.requests_for(WEIGHTS_PATH)                    # it did go to the mirror
    folder = home / "downloads" / "inception"
    assert not list(folder.glob("*")) if folder.exists() else True   # nothing left behind


def test_download_verified_by_sha256_then_loaded(home, monkeypatch, weights_file):
    data = weights_file.read_bytes()
    monkeypatch.setattr(inception, "WEIGHTS_SHA256", hashlib.sha256(data).hexdigest())
    srv = FileServer(files={WEIGHTS_PATH: data}).start()
    monkeypatch.setenv("GANZOO_MIRROR", srv.base)
    try:
        ex = build_extractor("inception", _context())
    finally:
        srv.stop()
    assert ex.weights == "pt_inception-2015-12-05"           # the (patched) published hash
    assert (home / "downloads" / "inception" / Path(WEIGHTS_PATH).name).is_file()
    assert ex.resize_description(32) == "tf1-bilinear 32->299" and ex.has_logits
    assert ex.fid_mode == "legacy-tf"


def test_offline_without_weights_names_the_url_and_the_manual_path(home, monkeypatch):
    from local_http import closed_port
    monkeypatch.setenv("GANZOO_MIRROR", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(GanzooError, match="download it by hand and put it at") as e:
        build_extractor("inception", _context())
    assert "pt_inception-2015-12-05-6726825d.pth" in _error_line(e)


def test_feature_weights_path_is_used_offline(home, monkeypatch, weights_file):
    from local_http import closed_port
    monkeypatch.setenv("GANZOO_MIRROR", f"http://127.0.0.1:{closed_port()}")
    ex = build_extractor("inception", _context(weights=str(weights_file)))
    assert ex.net.weights_id.startswith("random-inception.pth")
    with pytest.raises(GanzooError, match="does not apply"):
        build_extractor("domain", _context(weights=str(weights_file)))


# -- preprocessing modes: what the first convolution sees, against each reference's formula ----

class _Stop(Exception):
    pass


def _graph_input(extractor, images: torch.Tensor) -> np.ndarray:
    """The tensor the network's first convolution receives for uint8 ``images`` (the whole
    preprocessing, wherever the implementation does it), stopping the forward pass there."""
    seen = []

    def hook(module, args):
        seen.append(args[0].detach().float().numpy().copy())
        raise _Stop

    handle = extractor.net.Conv2d_1a_3x3.register_forward_pre_hook(hook)
    try:
        extractor(images)
    except _Stop:
        pass
    finally:
        handle.remove()
    return seen[0]


def _extractor(net, **kw):
    from ganzoo.metrics.extract import Extractor, prepare_net
    return Extractor(prepare_net(net), "inception", "random", True, **kw)


def _tf1_axis(n_in: int, n_out: int):
    """tf.image.resize_bilinear, align_corners=False: source = dst * in / out (float32),
    neighbours floor and floor + 1 clamped to the last pixel."""
    src = np.arange(n_out, dtype=np.float32) * np.float32(n_in / n_out)
    lo = np.floor(src).astype(int)
    return lo, np.minimum(lo + 1, n_in - 1), (src - lo).astype(np.float64)


def _half_pixel_axis(n_in: int, n_out: int):
    """PyTorch bilinear, align_corners=False: source = (dst + 0.5) * in / out - 0.5
    (the scale in float32, the rest in double, rounded to float32, as PyTorch computes it
    for float images), clamped at 0, no antialiasing."""
    scale = np.float64(np.float32(n_in / n_out))
    src = np.maximum(((np.arange(n_out) + 0.5) * scale - 0.5).astype(np.float32), 0)
    lo = np.floor(src).astype(int)
    return lo, np.minimum(lo + 1, n_in - 1), (src - lo).astype(np.float64)


def _bilinear(img: np.ndarray, axis, size: int) -> np.ndarray:
    """Separable bilinear resize of float NCHW with the sampling positions of ``axis``."""
    y0, y1, fy = axis(img.shape[2], size)
    x0, x1, fx = axis(img.shape[3], size)
    rows = img[:, :, :, x0] * (1 - fx) + img[:, :, :, x1] * fx
    return rows[:, :, y0, :] * (1 - fy)[:, None] + rows[:, :, y1, :] * fy[:, None]


def _images(size: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", [13, 317])          # odd, up- and downsampled
def test_legacy_tf_mode_is_tf1_bilinear_then_minus_128_over_128(net, size):
    """The default: torch-fidelity's and NVlabs' input to the TF graph."""
    images = _images(size)
    want = (_bilinear(images.double().numpy(), _tf1_axis, 299) - 128) / 128
    extractor = _extractor(net)
    got = _graph_input(extractor, images)
    assert got.shape == (2, 3, 299, 299)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    assert extractor.fid_mode == "legacy-tf"


@pytest.mark.parametrize("size", [13, 317])
def test_pytorch_fid_mode_is_half_pixel_bilinear_of_x_over_255_then_2x_minus_1(net, size):
    images = _images(size, seed=1)
    want = 2 * _bilinear(images.double().numpy() / 255, _half_pixel_axis, 299) - 1
    got = _graph_input(_extractor(net, fid_mode="pytorch-fid"), images)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_clean_mode_is_pil_bicubic_per_float_channel_clipped_then_minus_128_over_128(net):
    """clean-fid: each channel a PIL 'F' image of the uint8 values, bicubic to 299, clipped
    to [0, 255]. Hard 0/255 edges make bicubic overshoot, so the clip matters."""
    from PIL import Image
    images = (_images(11, seed=2) > 127).to(torch.uint8) * 255
    want = np.empty((2, 3, 299, 299))
    for n in range(2):
        for c in range(3):
            channel = Image.fromarray(images[n, c].numpy().astype(np.float32))
            resized = np.asarray(channel.resize((299, 299), Image.BICUBIC), dtype=np.float64)
            assert resized.min() < 0 or resized.max() > 255          # it does overshoot
            want[n, c] = (resized.clip(0, 255) - 128) / 128
    got = _graph_input(_extractor(net, fid_mode="clean"), images)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_a_grey_image_enters_as_three_equal_channels(net):
    grey = _images(13)[:, :1]
    got = _graph_input(_extractor(net), grey)
    want = _graph_input(_extractor(net), grey.expand(-1, 3, -1, -1).contiguous())
    np.testing.assert_array_equal(got, want)


def test_is_logits_leave_out_the_fc_bias():
    """The original IS code, TTUR, NVlabs and torch-fidelity take logits as
    pool features @ W^T: a nonzero bias must not change them."""
    biased = random_inception(seed=0)
    with torch.no_grad():
        biased.fc.bias.copy_(torch.linspace(-3, 3, 1008))
    feats, logits = _extractor(biased)(_images(13))
    np.testing.assert_allclose(logits.numpy(), (feats @ biased.fc.weight.T).numpy(),
                               rtol=1e-5, atol=1e-5)
    with_bias = biased.fc(feats)
    assert (with_bias - logits).abs().max() > 1


def test_unknown_or_misapplied_fid_mode_is_one_line(home):
    with pytest.raises(GanzooError, match="unknown FID preprocessing mode 'tf'") as e:
        build_extractor("inception", _context(fid_mode="tf"))
    assert "legacy-tf, pytorch-fid, clean" in _error_line(e)
    with pytest.raises(GanzooError, match="inception extractor only") as e:
        build_extractor("domain", _context(fid_mode="clean"))
    _error_line(e)


def test_every_record_names_its_mode_and_each_mode_has_its_own_reference(home, weights_file):
    """The mode is part of the score's identity: recorded with it, and in the reference
    statistics' cache key (features of one mode never serve another)."""
    import ganzoo
    from ganzoo.metrics.evaluate import Evaluator, parse_metrics
    reals = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0)).numpy()
    data = ImageSet("x", reals)
    model = ganzoo.create("dcgan", ganzoo.DataSpec(32, 3), base_channels=8, max_channels=16,
                          latent_dim=16)
    records, means = {}, {}
    for mode in (None, "clean"):
        ev = Evaluator.build(parse_metrics("fid"), "inception", registry=Registry(), data=data,
                             data_name="x", weights=str(weights_file), default_num=4,
                             fid_mode=mode)
        records[mode] = ev.evaluate(model)[0]
        means[mode] = ev.reference.mu
    assert records[None]["fid_mode"] == "legacy-tf"       # the default, named
    assert records[None]["resize"] == "tf1-bilinear 32->299"
    assert records["clean"]["fid_mode"] == "clean"
    assert records["clean"]["resize"] == "pil-bicubic 32->299"
    assert len(list((home / "metrics").glob("reference-*.npz"))) == 2
    assert not np.allclose(means[None], means["clean"])
