"""wgan-gp, dcgan --loss, cgan: layouts, the n_critic batches, conditional sampling and grids."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from torch import nn

import ganzoo
from ganzoo.checkpoint import checkpoints_of
from ganzoo_plugins.cgan.model import CGAN, CGANConfig
from ganzoo_plugins.wgan_gp.model import WGANGP, WGANGPConfig, ResBlock

CPU = torch.device("cpu")


@pytest.mark.parametrize("resolution,dim,blocks", [(32, 128, 3), (64, 64, 4)])
def test_wgan_gp_resnet_layout(resolution, dim, blocks):
    model = WGANGP(WGANGPConfig(), ganzoo.DataSpec(resolution, 3), CPU)
    assert len(model.G.blocks) == blocks
    assert all(b.resample == "up" for b in model.G.blocks)
    assert model.G.fc.in_features == 128 and model.G.blocks[-1].conv2.out_channels == dim
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.D.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.D.modules())
    assert sum(isinstance(m, ResBlock) and m.resample == "down"
               for m in model.D.modules()) == (2 if resolution == 32 else 4)
    assert model.setup.n_critic == 5 and model.setup.gp_weight == 10
    assert model.opt_d.defaults["lr"] == 1e-4 and model.opt_d.defaults["betas"] == (0.0, 0.9)
    x = model.generate(2, seed=0)
    assert x.shape == (2, 3, resolution, resolution) and model.D(x).shape == (2,)


def test_critic_without_norm():
    model = WGANGP(WGANGPConfig(dim=8, critic_norm="none"), ganzoo.DataSpec(32, 3), CPU)
    assert not any(isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)) for m in model.D.modules())


def test_dcgan_trained_as_wgan_gp_uses_layernorm_and_5_critic_steps():
    model = ganzoo.create("dcgan", ganzoo.DataSpec(32, 3), loss="wgan-gp", base_channels=8)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.D.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.D.modules())
    assert model.batches_per_step == 5
    stats = model.train_step(torch.rand(40, 3, 32, 32) * 2 - 1, None)
    assert {"gp", "wdist", "loss_d", "loss_g"} <= stats.keys()


@pytest.mark.parametrize("loss", ["non-saturating", "hinge", "lsgan", "wgan-gp"])
def test_every_loss_trains_a_step(loss):
    for name in ("dcgan", "cgan"):
        model = ganzoo.create(name, ganzoo.DataSpec(32, 3, 5), loss=loss)
        reals = torch.rand(4 * model.batches_per_step, 3, 32, 32) * 2 - 1
        labels = torch.arange(len(reals)) % 5 if model.conditional else None
        before = [p.clone() for p in model.G.parameters()]
        model.train_step(reals, labels)
        assert any(not torch.equal(a, b) for a, b in zip(before, model.G.parameters()))


def test_trainer_feeds_n_critic_minibatches_per_step(cli, tmp_path):
    r = cli("train", "wgan-gp", "--data", "shapes", "--resolution", "32", "--dim", "8",
            "--batch", "8", "--kimg", "0.08", "--tick", "0.04", "-q")
    assert r.code == 0, r.err
    run = next((tmp_path / "runs").iterdir())
    stats = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["kimg"] == 0.08 and stats[-1]["step"] == 2   # 2 steps x 5 x 8 images


@pytest.mark.parametrize("resolution,start", [(28, 7), (32, 4), (64, 4)])
def test_cgan_layout(resolution, start):
    model = CGAN(CGANConfig(base_channels=8, max_channels=32), ganzoo.DataSpec(resolution, 1, 10), CPU)
    assert model.G.s == start
    assert model.G.stem[0].kernel_size == (start, start)
    assert model.G.label.embed.num_embeddings == 10 and model.G.label.embed.embedding_dim == 50
    assert model.G.label.linear.out_features == start * start
    assert model.D.label.linear.out_features == resolution * resolution
    x = model.generate(3, seed=1, labels=torch.tensor([4]))
    assert x.shape == (3, 1, resolution, resolution)
    assert model.D(x, torch.tensor([4, 4, 4])).shape == (3,)


def test_cgan_label_changes_the_image_for_a_fixed_seed():
    model = CGAN(CGANConfig(base_channels=8, max_channels=32), ganzoo.DataSpec(32, 3, 5), CPU)
    a = model.generate(1, seed=3, labels=torch.tensor([0]))
    b = model.generate(1, seed=3, labels=torch.tensor([1]))
    assert not torch.equal(a, b)
    assert torch.equal(a, model.generate(1, seed=3, labels=torch.tensor([0])))


def test_cgan_rejects_resolution_and_unlabelled_data(cli, tmp_path):
    r = cli("train", "cgan", "--data", "shapes", "--resolution", "128")
    assert r.code == 1 and "28 to 64" in r.err
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    r = cli("train", "cgan", "--data", str(tmp_path), "--resolution", "32")
    assert r.code == 1 and "no labels" in r.err


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory):
    from conftest import run_ganzoo
    root = tmp_path_factory.mktemp("cgan")
    done = run_ganzoo("train", "cgan", "--data", "shapes", "--resolution", "32", "--base-channels", "8",
                      "--batch", "16", "--kimg", "0.064", "-q", cwd=root)
    assert done.returncode == 0, done.stderr
    return next((root / "runs").iterdir())


def test_conditional_grid_has_one_class_per_column(cgan_run):
    assert Image.open(cgan_run / "final.png").size == (5 * 32, 12 + 10 * 32)  # titled columns
    reals = Image.open(cgan_run / "samples" / "reals.png")
    assert reals.size == (160, 332)


def test_generate_class_by_index_name_and_all(cli, cgan_run, tmp_path):
    r = cli("generate", "--checkpoint", str(cgan_run), "--class", "3", "--seeds", "0-1")
    assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "generated").iterdir()) == \
        ["seed0000-class3.png", "seed0001-class3.png"]
    r = cli("generate", "--checkpoint", str(cgan_run), "--class", "star", "--seeds", "0",
            "--out", "byname")
    assert r.code == 0
    assert (tmp_path / "byname" / "seed0000-class3.png").read_bytes() == \
        (tmp_path / "generated" / "seed0000-class3.png").read_bytes()
    r = cli("generate", "--checkpoint", str(cgan_run), "--class", "all", "--seeds", "0-3",
            "--out", "all")
    assert r.code == 0
    assert Image.open(tmp_path / "all" / "grid.png").size == (5 * 32, 12 + 4 * 32)


@pytest.mark.parametrize("bad", ["5", "-1", "hexagon"])
def test_generate_class_out_of_range_names_valid_classes(cli, cgan_run, bad):
    r = cli("generate", "--checkpoint", str(cgan_run), "--class", bad)
    assert r.code == 1 and len(r.err.strip().splitlines()) == 1
    assert "valid classes: 0=circle, 1=square, 2=triangle, 3=star, 4=ring" in r.err


def test_resumed_cgan_checkpoint_loads(cgan_run):
    ckpt = ganzoo.load_checkpoint(checkpoints_of(cgan_run)[-1])
    assert ckpt.model.conditional and ckpt.model.data.class_names[3] == "star"
