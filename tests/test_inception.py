"""The FID Inception-v3: shapes on random weights, and a loader that takes only the right file.
No internet: downloads come from a local HTTP server on 127.0.0.1 (GANZOO_MIRROR)."""
from __future__ import annotations

import hashlib
from pathlib import Path

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
    assert ex.resize_description(32) == "bilinear 32->299" and ex.has_logits


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
