"""StyleGAN2-ADA at one with the official implementation (NVlabs stylegan2-ada-pytorch).

- ../shared/fixtures/stylegan2-official/ holds outputs the official networks computed from
  seeded random weights; ganzoo's networks, built from the same constructor arguments and
  loaded with the weights as they are, reproduce every output within 1e-5 relative.
- Official network pickles import without running code from them (tests/official_pickles.py
  writes them with stand-in persistence modules that leave markers when their code runs).
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from official_pickles import (MARKER_RECONSTRUCT, MARKER_SOURCE, OFFICIAL_FIXTURES,
                              fixture_networks, load_fixture, official_pickle,
                              stand_ins_importable, write_snapshot)

FIXTURES = OFFICIAL_FIXTURES
FILES = ["sg2ada-32-uncond.pt", "sg2ada-32-cond5.pt", "sg2ada-64-cond3-map8.pt"]
TOLERANCE = 1e-5      # relative to the reference's largest magnitude; float32 rounding is ~1e-6

needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared fixtures absent")


def rel_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


@pytest.fixture(scope="module", params=FILES)
def fixture(request):
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures/stylegan2-official is absent")
    return load_fixture(FIXTURES / request.param)


# -- the networks against the official outputs ---------------------------------------------------

@torch.no_grad()
def test_mapping_matches_official(fixture):
    G, _ = fixture_networks(fixture)
    z, c, out = fixture["inputs"]["z"], fixture["inputs"]["c"], fixture["outputs"]
    assert rel_error(G.mapping(z, c), out["ws_psi1"]) < TOLERANCE
    assert rel_error(G.mapping(z, c, truncation_psi=0.7), out["ws_psi0.7"]) < TOLERANCE
    assert rel_error(G.mapping(z, c, truncation_psi=0.7, truncation_cutoff=3),
                     out["ws_psi0.7_cutoff3"]) < TOLERANCE


@torch.no_grad()
def test_synthesis_matches_official(fixture):
    G, _ = fixture_networks(fixture)
    ws, out = fixture["inputs"]["ws"], fixture["outputs"]
    assert rel_error(G.synthesis(ws, noise_mode="const"), out["img_const"]) < TOLERANCE
    assert rel_error(G.synthesis(ws, noise_mode="none"), out["img_none"]) < TOLERANCE


@torch.no_grad()
def test_generator_and_discriminator_match_official(fixture):
    G, D = fixture_networks(fixture)
    z, c, out = fixture["inputs"]["z"], fixture["inputs"]["c"], fixture["outputs"]
    for psi in (1, 0.7):
        img = G(z, c, truncation_psi=psi, noise_mode="const")
        assert rel_error(img, out[f"G_psi{psi}_const"]) < TOLERANCE
    assert rel_error(D(out["G_psi1_const"], c), out["D_logits_on_G"]) < TOLERANCE
    assert rel_error(D(fixture["inputs"]["randn_images"], c), out["D_logits_on_randn"]) < TOLERANCE


@needs_fixtures
@torch.no_grad()
def test_up_sampling_kernels_are_in_the_official_layout():
    """Copied as they are, official weights give the official images; the kernels of
    ganzoo's layout 1 (flipped) would not."""
    from ganzoo_plugins.stylegan2_ada.model import flip_up_kernels
    fixture = load_fixture(FIXTURES / FILES[0])
    G, _ = fixture_networks(fixture)
    G.load_state_dict(flip_up_kernels(fixture["G"]))
    img = G.synthesis(fixture["inputs"]["ws"], noise_mode="const")
    assert rel_error(img, fixture["outputs"]["img_const"]) > 0.1


@needs_fixtures
def test_conditional_discriminator_mapping_depth_and_parameter_counts():
    """The official train.py gives a conditional D an 8-layer label mapping under every
    --cfg; ganzoo's D built from a --cfg has the official parameter count."""
    import ganzoo
    for name in FILES[1:]:
        fixture = load_fixture(FIXTURES / name)
        kw = fixture["G_kwargs"]
        model = ganzoo.create("stylegan2-ada", ganzoo.DataSpec(kw["img_resolution"], 3,
                                                               kw["c_dim"]),
                              cfg="auto", cond=True, cbase=2048, cmax=128, z_dim=128,
                              w_dim=128, map=kw["mapping_kwargs"]["num_layers"])
        assert model.config.d_map == 8
        assert [k for k in model.D.state_dict() if k.startswith("mapping.fc")][-2:] == \
            ["mapping.fc7.weight", "mapping.fc7.bias"]
        ours = {k: v.shape for k, v in model.D.state_dict().items()}
        assert ours == {k: v.shape for k, v in fixture["D"].items()}
    for cfg in ("cifar", "tiny", "stylegan2"):
        model = ganzoo.create("stylegan2-ada", ganzoo.DataSpec(32, 3, 10), cfg=cfg, cond=True)
        assert model.D.mapping.num_layers == 8


# -- importing official pickles ------------------------------------------------------------------

@pytest.fixture
def snapshot_file(tmp_path):
    return write_snapshot(tmp_path)


def test_the_stand_in_pickle_really_runs_code_when_unpickled(snapshot_file):
    """The test data is a real threat: plain pickle.load runs the stand-in's code."""
    path, _ = snapshot_file
    root = path.parent / "stand-ins"
    with stand_ins_importable(root):
        with open(path, "rb") as f:
            pickle.load(f)
    assert (root / MARKER_RECONSTRUCT).exists() and (root / MARKER_SOURCE).exists()


def test_import_runs_no_code_and_recovers_config_weights_p_and_kimg(snapshot_file):
    from ganzoo.checkpoint import load_model
    path, fixture = snapshot_file
    root = path.parent / "stand-ins"
    with stand_ins_importable(root):      # importable, yet never imported
        loaded = load_model(path)
        assert "torch_utils.persistence" not in sys.modules
    assert not (root / MARKER_RECONSTRUCT).exists() and not (root / MARKER_SOURCE).exists()
    model = loaded.model
    assert (model.config.cond, model.config.map, model.config.d_map) == (True, 2, 8)
    assert (model.config.cbase, model.config.cmax, model.config.z_dim) == (2048, 128, 128)
    assert model.data.num_classes == 5 and model.data.resolution == 32
    assert loaded.progress.images == 120_000 and model.images_seen == 120_000
    assert model.augment_p == pytest.approx(0.25) and model.ada.p == pytest.approx(0.25)
    for ours, theirs in ((model.G, "G"), (model.ema.model, "G"), (model.D, "D")):
        state = ours.state_dict()
        assert all(torch.equal(state[k], v) for k, v in fixture[theirs].items())


def test_a_single_generator_pickle_imports(tmp_path):
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures/stylegan2-official is absent")
    from ganzoo.checkpoint import load_model
    fixture = load_fixture(FIXTURES / FILES[0])
    G, _ = fixture_networks(fixture)
    path = tmp_path / "G.pkl"
    path.write_bytes(official_pickle(tmp_path / "si", G,
                                     class_names={G: "training.networks.Generator"},
                                     init_kwargs={G: fixture["G_kwargs"]}))
    model = load_model(path).model
    img = model.ema.model(fixture["inputs"]["z"], None, noise_mode="const")
    assert rel_error(img, fixture["outputs"]["G_psi1_const"]) < TOLERANCE


def _evil_pickle(path: Path, func) -> Path:
    class Evil:
        def __reduce__(self):
            return func, ("echo pwned > " + str(path.parent / "pwned"),)
    path.write_bytes(pickle.dumps({"G": Evil()}, protocol=4))
    return path


@pytest.mark.parametrize("func,name", [(__import__("os").system, "system"), (eval, "eval")])
def test_pickles_reaching_code_are_refused_with_one_line(cli, tmp_path, func, name):
    path = _evil_pickle(tmp_path / "network.pkl", func)
    for args in (["generate", "--checkpoint", str(path)], ["convert", str(path), "--out",
                                                           str(tmp_path / "x.pt")]):
        result = cli(*args)
        assert result.code == 1
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and name in lines[0] and "refused" in lines[0], result.err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "x.pt").exists()


def test_refused_families_say_why(tmp_path):
    from ganzoo.checkpoint import read_checkpoint
    from ganzoo.errors import GanzooError
    from torch import nn
    layer = nn.Linear(2, 2)
    path = tmp_path / "sg3.pkl"
    path.write_bytes(official_pickle(tmp_path / "si", {"G_ema": layer}, class_names={
        layer: "training.networks_stylegan3.Generator"}))
    with pytest.raises(GanzooError, match="StyleGAN3"):
        read_checkpoint(path)

    tf_path = tmp_path / "tf.pkl"      # what a TensorFlow-era pickle starts with
    tf_path.write_bytes(b"\x80\x02cdnnlib.tflib.network\nNetwork\n)\x81.")
    with pytest.raises(GanzooError, match="TensorFlow-era"):
        read_checkpoint(tf_path)


# -- generate, convert, fine-tune and resume from a pickle ---------------------------------------

def official_uint8(images: torch.Tensor) -> np.ndarray:
    """The official generate.py's conversion: (x * 127.5 + 128).clamp(0, 255) to uint8."""
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_seeds_draw_z_as_the_official_generate_py(snapshot_file):
    from ganzoo.checkpoint import load_model
    model = load_model(snapshot_file[0]).model
    for seed in (0, 7, 2 ** 32 - 1):
        expected = np.random.RandomState(seed).randn(1, 128)
        assert np.array_equal(model.seeded_normal(1, 128, seed).numpy(),
                              expected.astype(np.float32))


def test_generate_writes_the_official_images(cli, snapshot_file, monkeypatch, tmp_path):
    """`ganzoo generate --checkpoint network.pkl --seeds S --trunc 0.7 --class K` writes
    the images the official networks give for those latents, within one uint8 level
    (the fixture's latents stand in for the seeds' RandomState draws, tested above)."""
    from PIL import Image
    from ganzoo_plugins.stylegan2_ada.model import StyleGAN2ADA
    path, fixture = snapshot_file
    z, c = fixture["inputs"]["z"], fixture["inputs"]["c"]
    monkeypatch.setattr(StyleGAN2ADA, "seeded_normal",
                        lambda self, n, dim, seed: z[seed:seed + n].to(self.device))
    expected = official_uint8(fixture["outputs"]["G_psi0.7_const"])
    for row in range(4):
        k = int(c[row].argmax())
        result = cli("generate", "--checkpoint", str(path), "--seeds", str(row), "--trunc",
                     "0.7", "--class", str(k), "--out", str(tmp_path / "gen"))
        assert result.code == 0, result.err
        ours = np.asarray(Image.open(tmp_path / "gen" / f"seed{row:04d}-class{k}.png"))
        diff = np.abs(ours.astype(int) - expected[row].astype(int))
        assert diff.max() <= 1, diff.max()


def test_convert_writes_a_weights_only_checkpoint(cli, snapshot_file, tmp_path):
    from ganzoo.checkpoint import load_model
    path, _ = snapshot_file
    out = tmp_path / "converted.pt"
    result = cli("convert", str(path), "--out", str(out))
    assert result.code == 0, result.err
    assert "kimg 120" in result.out
    torch.load(out, weights_only=True)
    a, b = load_model(path).model, load_model(out).model
    assert torch.equal(a.generate(2, seed=3, labels=torch.tensor(1)),
                       b.generate(2, seed=3, labels=torch.tensor(1)))


@pytest.mark.slow
def test_fine_tune_and_resume_from_an_official_snapshot(cli, snapshot_file, tmp_path):
    """--init takes the networks (optimisers fresh) and the file's architecture options;
    --resume network-snapshot-000120.pkl continues kimg and p in a new run directory."""
    from ganzoo.checkpoint import checkpoints_of, list_runs, read_checkpoint
    path, fixture = snapshot_file
    common = ["--data", "shapes", "--resolution", "32", "--batch", "8", "--kimg", "0.016",
              "--out", str(tmp_path / "runs"), "-q"]
    result = cli("train", "stylegan2-ada", "--init", str(path), "--freeze-d", "2", *common)
    assert result.code == 0, result.err
    run = list_runs(tmp_path / "runs")[-1]
    data = read_checkpoint(checkpoints_of(run)[-1])
    assert data["config"]["cond"] and data["config"]["d_map"] == 8
    frozen = {k: v for k, v in data["state"]["D"].items() if k.startswith("b32.")}
    assert frozen and all(torch.equal(v, fixture["D"][k]) for k, v in frozen.items())

    common[common.index("--kimg") + 1] = "120.016"
    result = cli("train", "stylegan2-ada", "--resume", str(path), *common)
    assert result.code == 0, result.err
    run = list_runs(tmp_path / "runs")[-1]
    data = read_checkpoint(checkpoints_of(run)[-1])
    assert data["progress"]["images"] == 120_016
    assert abs(data["state"]["augment_p"] - 0.25) < 1e-3


def test_stylegan3_repository_stylegan2_pickles_import(tmp_path):
    """stylegan3's --cfg stylegan2 pickles: module training.networks_stylegan2, synthesis
    arguments flattened into G's."""
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures/stylegan2-official is absent")
    from ganzoo.checkpoint import load_model
    fixture = load_fixture(FIXTURES / FILES[0])
    G, D = fixture_networks(fixture)
    g_kwargs = {k: v for k, v in fixture["G_kwargs"].items() if k != "synthesis_kwargs"}
    g_kwargs.update(fixture["G_kwargs"]["synthesis_kwargs"])
    path = tmp_path / "network-snapshot-000004.pkl"
    path.write_bytes(official_pickle(
        tmp_path / "si", {"G": G, "D": D, "G_ema": G, "augment_pipe": None},
        class_names={G: "training.networks_stylegan2.Generator",
                     D: "training.networks_stylegan2.Discriminator"},
        init_kwargs={G: g_kwargs, D: fixture["D_kwargs"]}))
    loaded = load_model(path)
    assert loaded.progress.images == 4000
    img = loaded.model.ema.model(fixture["inputs"]["z"], None, noise_mode="const")
    assert rel_error(img, fixture["outputs"]["G_psi1_const"]) < TOLERANCE
