"""Training details pinned to the official StyleGAN2-ADA loop, and old checkpoints upgraded.

Official behaviour (stylegan2-ada-pytorch, training/loss.py and training_loop.py):
- G's w average moves on every training mapping call: Gmain, Greg (path length) and Dmain's
  fakes, 2.25 updates per minibatch with Greg every 4th;
- ADA's r_t averages the signs of D's real logits of the Dmain and the R1 phases;
- parameters a regulariser does not reach get zero gradients (Adam counts the step);
- labels of generated images are drawn per phase from the data set's labels.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ganzoo
from ganzoo_plugins.stylegan2_ada.networks import MappingNetwork

LAYOUT1 = Path(__file__).parent / "fixtures" / "stylegan2-layout1"


def tiny(cond: bool = False, counts=(), **overrides):
    torch.manual_seed(0)
    spec = ganzoo.DataSpec(16, 3, 5, tuple("abcde"), label_counts=counts)
    return ganzoo.create("stylegan2-ada", spec, cfg="tiny", cond=cond, cmax=16, cbase=256,
                         z_dim=16, w_dim=16, **overrides)


def reals(n=8):
    torch.manual_seed(1)
    return torch.rand(n, 3, 16, 16) * 2 - 1, torch.zeros(n, dtype=torch.long)


def test_w_avg_moves_on_every_training_mapping_call(monkeypatch):
    model = tiny()
    calls = []
    original = MappingNetwork.forward

    def counting(self, *args, update_emas=False, **kw):
        calls.append(update_emas)
        return original(self, *args, update_emas=update_emas, **kw)

    monkeypatch.setattr(MappingNetwork, "forward", counting)
    x, y = reals()
    for _ in range(4):
        model.train_step(x, y)
    assert sum(calls) == 9          # 4 Gmain + 4 Dmain + 1 Greg: 2.25 per minibatch


def test_r_t_counts_the_dmain_and_r1_phases():
    model = tiny(r1_interval=4)
    counted = []
    original = model.ada.accumulate
    model.ada.accumulate = lambda logits: (counted.append(logits.numel()), original(logits))
    x, y = reals()
    for _ in range(4):
        model.train_step(x, y)
    assert counted == [8, 8, 8, 8, 8]      # Dmain x 4, R1 once (batch_idx 0)


def test_regulariser_only_phases_still_count_as_adam_steps():
    model = tiny(r1_interval=16, pl_interval=4)
    x, y = reals()
    model.train_step(x, y)              # batch 0: Gmain + Greg, Dmain + Dreg
    g_params = dict(model.G.named_parameters())
    d_params = dict(model.D.named_parameters())
    torgb_bias = g_params["synthesis.b16.torgb.bias"]
    out_bias = d_params["b4.out.bias"]
    assert model.opt_g.state[torgb_bias]["step"] == 2
    assert model.opt_d.state[out_bias]["step"] == 2
    # Every parameter took both steps (none was skipped for want of a gradient).
    assert {int(model.opt_g.state[p]["step"]) for p in g_params.values()} == {2}


def test_fake_labels_follow_the_data_not_the_minibatch(monkeypatch):
    model = tiny(cond=True, counts=(0, 0, 30, 10, 0))
    seen = []
    original = model.loss.generator_main
    monkeypatch.setattr(model.loss, "generator_main",
                        lambda z, c: (seen.append(c.argmax(1)), original(z, c))[1])
    x, y = reals()                       # every real is class 0
    for _ in range(20):
        model.train_step(x, y)
    labels = torch.cat(seen)
    assert set(labels.tolist()) == {2, 3}
    assert 0.6 < (labels == 2).float().mean().item() < 0.9      # 30 : 10 -> 0.75
    # Unknown frequencies (a spec without counts): uniform over the classes.
    model = tiny(cond=True)
    drawn = model._fake_cond(2000).argmax(1)
    assert torch.bincount(drawn, minlength=5).min() > 300


def test_trainer_passes_the_class_frequencies(tmp_path):
    from ganzoo.data.source import ImageSet
    from ganzoo.trainer import label_counts
    import numpy as np
    data = ImageSet("x", np.zeros((5, 1, 4, 4), np.uint8), np.array([0, 2, 2, 1, 2]),
                    ("a", "b", "c"))
    assert label_counts(data) == (1, 1, 3)


# -- checkpoints of ganzoo's layout 1 (written by main before the official layout) -------------

def test_layout1_checkpoint_loads_in_the_official_layout():
    """A checkpoint that main wrote before this change (tiny, conditional, D mapping of
    --map 2 layers, up-sampling kernels as correlations) gives the same images and logits."""
    from ganzoo.checkpoint import load_model
    loaded = load_model(LAYOUT1 / "ckpt-0000000064.pt")
    expected = torch.load(LAYOUT1 / "expected.pt", weights_only=True)
    model = loaded.model
    assert model.config.d_map == 2 and model.D.mapping.num_layers == 2
    c = torch.nn.functional.one_hot(expected["labels"], 5).float()
    with torch.no_grad():
        img = model.ema.model(expected["z"], c, truncation_psi=0.7, noise_mode="const")
        logits = model.D(expected["reals"], c)
    assert torch.allclose(img, expected["G_ema_psi0.7_const"], atol=1e-6)
    assert torch.allclose(logits, expected["D_logits"], atol=1e-6)
    state = model.state_dict()
    assert state["layout"] == 2


def test_layout1_adam_moments_are_flipped_with_their_kernels():
    from ganzoo.checkpoint import read_checkpoint
    from ganzoo_plugins.stylegan2_ada.model import StyleGAN2ADA
    old = read_checkpoint(LAYOUT1 / "ckpt-0000000064.pt")
    new = StyleGAN2ADA.upgrade_checkpoint(old)
    names = [k for k, _ in StyleGAN2ADA(ganzoo.make_config(StyleGAN2ADA, new["config"]),
                                        ganzoo.DataSpec.from_dict(new["data_spec"]),
                                        torch.device("cpu")).G.named_parameters()]
    i = names.index("synthesis.b8.conv0.weight")
    j = names.index("synthesis.b8.conv1.weight")
    moments_old, moments_new = old["state"]["opt_g"]["state"], new["state"]["opt_g"]["state"]
    assert torch.equal(moments_new[i]["exp_avg"], moments_old[i]["exp_avg"].flip([2, 3]))
    assert torch.equal(moments_new[j]["exp_avg"], moments_old[j]["exp_avg"])
    assert old["state"].get("layout") is None       # the input is left as it was


@pytest.mark.slow
def test_layout1_checkpoint_resumes(cli, tmp_path):
    from conftest import resume_copy
    last = resume_copy(cli, tmp_path, LAYOUT1 / "ckpt-0000000064.pt", "stylegan2-ada", "0.08")
    assert last.name == "ckpt-0000000080.pt"


def test_cifar_config_uses_the_original_non_residual_discriminator():
    model = ganzoo.create("stylegan2-ada", ganzoo.DataSpec(32, 3), cfg="cifar")
    assert model.config.d_arch == "orig"
    names = list(model.D.state_dict())
    assert not any(".skip." in k for k in names) and "b32.fromrgb.weight" in names
    assert not any(k.startswith("b16.fromrgb") for k in names)
    img = torch.randn(4, 3, 32, 32)
    assert model.D(img, None).shape == (4, 1)
    resnet = ganzoo.create("stylegan2-ada", ganzoo.DataSpec(32, 3), cfg="cifar", d_arch="resnet")
    assert any(".skip." in k for k in resnet.D.state_dict())


def test_cpu_preset_is_tiny_with_the_settings_that_learn_shapes():
    """--cfg cpu: tiny's networks, batch 64, minibatch stddev over 32, no path length or
    style mixing (measured: the only CPU setting found that breaks the collapse)."""
    tiny_model = ganzoo.create("stylegan2-ada", ganzoo.DataSpec(32, 1), cfg="tiny")
    cpu = ganzoo.create("stylegan2-ada", ganzoo.DataSpec(32, 1), cfg="cpu")
    assert cpu.preferred_batch() == 64
    c = cpu.config
    assert (c.mbstd_group, c.pl_weight, c.style_mixing) == (32, 0.0, 0.0)
    assert sum(p.numel() for p in cpu.G.parameters()) == \
        sum(p.numel() for p in tiny_model.G.parameters())
