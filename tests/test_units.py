"""Small pieces: atomic writes, seeds, DCGAN layouts, grids."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import ganzoo
from ganzoo.atomic import atomic_write
from ganzoo.cli import parse_seeds
from ganzoo.viz import grid_image
from ganzoo_plugins.dcgan.model import DCGAN, DCGANConfig


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]
    with atomic_write(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new"


def test_parse_seeds():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds("5") == [5]


@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
def test_dcgan_layout(resolution):
    model = DCGAN(DCGANConfig(base_channels=8, latent_dim=128), ganzoo.DataSpec(resolution, 3),
                  torch.device("cpu"))
    g_layers, d_layers = list(model.G.net), list(model.D.net)
    assert isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d)
    assert isinstance(d_layers[0], nn.Conv2d) and isinstance(d_layers[1], nn.LeakyReLU)
    assert d_layers[1].negative_slope == 0.2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g_layers) == len(
        [m for m in g_layers if isinstance(m, nn.ConvTranspose2d)]) - 1
    assert any(isinstance(m, nn.ReLU) for m in g_layers)
    images = model.generate(2, seed=0)
    assert images.shape == (2, 3, resolution, resolution)
    assert images.abs().max() <= 1
    assert model.D(images).shape == (2,)
    w = torch.cat([m.weight.flatten() for m in model.G.modules() if isinstance(m, nn.Conv2d)
                   or isinstance(m, nn.ConvTranspose2d)])
    assert abs(w.std().item() - 0.02) < 0.002
    assert model.opt_g.defaults["lr"] == 2e-4 and model.opt_g.defaults["betas"] == (0.5, 0.999)


def test_generate_does_not_touch_global_rng_or_batchnorm():
    model = ganzoo.create("dcgan", ganzoo.DataSpec(32, 3), base_channels=8)
    state = torch.get_rng_state()
    stats = model.G.net[1].running_mean.clone()
    a = model.generate(4, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(model.G.net[1].running_mean, stats) and model.G.training
    assert torch.equal(a, model.generate(4, seed=5))


def test_grid_image_layout():
    img = grid_image(torch.zeros(6, 3, 8, 8), cols=3)
    assert img.size == (24, 16)
