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


def test_generator_ema_half_life_and_ramp_up():
    from ganzoo.ema import GeneratorEMA
    G = nn.Linear(1, 1, bias=False)
    ema = GeneratorEMA(G, ema_kimg=1.0, rampup=0.05)
    # Half-life 1000 images once 20 kimg are seen: 1000 images in steps of 100 halve the gap.
    assert ema.beta(100, 20_000) ** 10 == pytest.approx(0.5)
    # Early on the half-life is 5% of the images seen, so the average follows G quickly.
    assert ema.beta(100, 2_000) ** 1 == pytest.approx(0.5)
    with torch.no_grad():
        G.weight.fill_(0.0)
        ema.model.weight.fill_(1.0)
    for _ in range(10):
        ema.update(G, 100, 20_000)
    assert ema.model.weight.item() == pytest.approx(0.5)


def test_samples_come_from_the_weight_average():
    spec = ganzoo.DataSpec(32, 3)
    model = DCGAN(DCGANConfig(base_channels=8, max_channels=16, ema_kimg=1.0), spec, torch.device("cpu"))
    model.train_step(torch.rand(8, 3, 32, 32) * 2 - 1, None)
    assert not torch.equal(model.ema.model.net[0].weight, model.G.net[0].weight)
    z = model.seeded_normal(4, 100, 0)
    with torch.no_grad():
        assert torch.equal(model.generate(4, seed=0), model.ema.model.eval()(z))
    off = DCGAN(DCGANConfig(base_channels=8, max_channels=16, ema_kimg=0), spec,
                torch.device("cpu"))
    assert off.ema is None and off.sampling_generator is off.G
