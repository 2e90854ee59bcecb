"""StyleGAN2-ADA training: the --cfg table, the loss terms on hand-computed cases, lazy
regularisation, and tiny end-to-end runs (train, network.txt, exact resume, generate)."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ganzoo.errors import GanzooError
from ganzoo_plugins.stylegan2_ada.config import (ADAM_BETAS, StyleGAN2ADAConfig, cfg_batch,
                                                 lazy_adam, resolve)
from ganzoo_plugins.stylegan2_ada.loss import (LossSettings, StyleGAN2Loss, mix_styles,
                                               path_length_penalty, path_lengths, r1_penalty)


# -- the configuration table -------------------------------------------------------------------

def resolved(cfg: str, resolution: int, **overrides) -> StyleGAN2ADAConfig:
    return resolve(StyleGAN2ADAConfig(cfg=cfg, **overrides), resolution)


def test_auto_at_64_gives_the_published_values():
    c = resolved("auto", 64)
    assert cfg_batch(c, 64) == 32
    assert c.gamma == pytest.approx(0.0256)        # 0.0002 * 64^2 / 32
    assert c.ema == 10 and c.ema_rampup == 0.05     # 32 * 10 / 32 kimg
    assert (c.cbase, c.cmax, c.map, c.mbstd_group) == (16384, 512, 2, 4)
    assert c.lr == 0.0025 and c.pl_weight == 2 and c.style_mixing == 0.9
    assert (c.fp16_res, c.conv_clamp, c.r1_interval, c.pl_interval) == (4, 256, 16, 4)
    assert (c.z_dim, c.w_dim) == (512, 512)


@pytest.mark.parametrize("res,batch,gamma,ema,cbase,lr", [
    (32, 32, 0.0002 * 32 ** 2 / 32, 10, 16384, 0.0025),
    (256, 16, 0.0002 * 256 ** 2 / 16, 5, 16384, 0.0025),
    (512, 8, 0.0002 * 512 ** 2 / 8, 2.5, 32768, 0.0025),
    (1024, 4, 0.0002 * 1024 ** 2 / 4, 1.25, 32768, 0.002),
])
def test_auto_follows_the_resolution(res, batch, gamma, ema, cbase, lr):
    c = resolved("auto", res)
    assert cfg_batch(c, res) == batch and c.mbstd_group == min(batch, 4)
    assert (c.gamma, c.ema, c.cbase, c.lr) == (pytest.approx(gamma), ema, cbase, lr)


@pytest.mark.parametrize("cfg,row", [
    # batch, mbstd, channel base, lr, gamma, ema kimg, ramp-up (0 = none), mapping layers
    ("stylegan2", (32, 4, 32768, 0.002, 10, 10, 0, 8)),
    ("paper256", (64, 8, 16384, 0.0025, 1, 20, 0, 8)),
    ("paper512", (64, 8, 32768, 0.0025, 0.5, 20, 0, 8)),
    ("paper1024", (32, 4, 65536, 0.002, 2, 10, 0, 8)),
    ("cifar", (64, 32, 32768, 0.0025, 0.01, 500, 0.05, 2)),
])
def test_published_rows(cfg, row):
    c = resolved(cfg, 256)
    got = (cfg_batch(c, 256), c.mbstd_group, c.cbase, c.lr, c.gamma, c.ema, c.ema_rampup, c.map)
    assert got == row
    assert (c.pl_weight, c.style_mixing) == ((0, 0) if cfg == "cifar" else (2, 0.9))


def test_every_value_is_overridable_and_resolution_is_idempotent():
    c = resolved("paper256", 64, gamma=3.0, map=4, ema=1.5, ema_rampup=0.0, lr=0.01, cbase=512,
                 cmax=32, z_dim=16, w_dim=24, mbstd_group=2, pl_weight=0.0, style_mixing=0.5)
    assert (c.gamma, c.map, c.ema, c.ema_rampup, c.lr, c.cbase, c.cmax, c.z_dim, c.w_dim,
            c.mbstd_group, c.pl_weight, c.style_mixing) == (3.0, 4, 1.5, 0.0, 0.01, 512, 32,
                                                            16, 24, 2, 0.0, 0.5)
    assert resolve(c, 1024) == c      # a resolved config (as a checkpoint stores it) stays


@pytest.mark.parametrize("kwargs,fragment", [
    ({"gamma": -1.0}, "--gamma"), ({"style_mixing": 2.0}, "--style-mixing"),
    ({"aug": "fixed"}, "--aug fixed needs --p"), ({"target": 1.0}, "--target"),
    ({"cfg": "paper2048"}, "--cfg paper2048"),
])
def test_bad_options_are_readable(kwargs, fragment):
    with pytest.raises(GanzooError, match=fragment):
        StyleGAN2ADAConfig(**kwargs)


def test_lazy_regularisation_corrects_lr_and_betas():
    lr, betas = lazy_adam(0.0025, ADAM_BETAS, 16)
    assert lr == pytest.approx(0.0025 * 16 / 17)
    assert betas == (0.0, pytest.approx(0.99 ** (16 / 17)))
    lr, betas = lazy_adam(0.002, ADAM_BETAS, 4)
    assert lr == pytest.approx(0.0016) and betas[1] == pytest.approx(0.99 ** 0.8)


# -- the loss terms on hand-computed cases -----------------------------------------------------

def test_r1_of_a_linear_discriminator_is_its_weight_norm():
    """D(x) = <a, x> + b has gradient a at every x: R1 = ||a||^2 per sample, and the penalty's
    gradient with respect to a is 2a (this needs the double backward)."""
    torch.manual_seed(0)
    a = torch.randn(1, 3, 4, 4, requires_grad=True)
    reals = torch.randn(5, 3, 4, 4)
    penalty, logits = r1_penalty(lambda x: (x * a).sum(dim=[1, 2, 3])[:, None] + 0.5, reals)
    assert torch.allclose(penalty, a.detach().square().sum().expand(5))
    assert logits.shape == (5, 1)
    penalty.mean().backward()
    assert torch.allclose(a.grad, 2 * a.detach())


def test_r1_goes_through_the_augmentation():
    """D(aug(x)) with aug(x) = 3 x and D(x) = sum(x^2) / 2: the gradient is 9 x, R1 = 81 ||x||^2."""
    reals = torch.randn(4, 1, 2, 2)
    penalty, _ = r1_penalty(lambda x: (3 * x).square().sum(dim=[1, 2, 3])[:, None] / 2, reals)
    assert torch.allclose(penalty, 81 * reals.square().sum(dim=[1, 2, 3]))


def test_path_length_of_a_linear_synthesis():
    """img = sum_l A_l w_l: the gradient of <img, y> with respect to w_l is A_l^T y, and the
    length is sqrt(mean_l ||A_l^T y||^2)."""
    torch.manual_seed(0)
    n, num_ws, w_dim, pixels = 3, 4, 5, 2 * 3 * 3
    A = torch.randn(num_ws, pixels, w_dim)
    ws = torch.randn(n, num_ws, w_dim, requires_grad=True)
    img = torch.einsum("lpd,nld->np", A, ws).view(n, 2, 3, 3)
    y = torch.randn(n, 2, 3, 3)
    lengths = path_lengths(img, ws, noise=y)
    expected = torch.einsum("lpd,np->nld", A, y.view(n, pixels)).square().sum(2).mean(1).sqrt()
    assert torch.allclose(lengths, expected)
    penalty, mean = path_length_penalty(lengths, torch.tensor(2.0), decay=0.01)
    new_mean = 2.0 + 0.01 * (expected.mean() - 2.0)
    assert torch.allclose(mean, new_mean)
    assert torch.allclose(penalty, (expected - new_mean).square())


def test_path_length_noise_is_scaled_by_the_image_size():
    """With the default noise, a synthesis that copies one w entry to every pixel has a
    length of about sqrt(C * H * W / (H * W) / num_ws) = sqrt(C / num_ws)."""
    torch.manual_seed(0)
    ws = torch.randn(20000, 2, 3, requires_grad=True)
    img = ws[:, :1, :1, None].expand(20000, 3, 4, 4)
    lengths = path_lengths(img, ws)
    assert lengths.square().mean().item() == pytest.approx(3 / 2, rel=0.05)


def test_style_mixing_takes_the_tail_from_the_second_latent():
    torch.manual_seed(0)
    ws, other = torch.zeros(2, 6, 3), torch.ones(2, 6, 3)
    mixed = [mix_styles(ws, lambda: other, prob=1.0) for _ in range(50)]
    cutoffs = {int((m[0, :, 0] == 0).sum()) for m in mixed}
    assert cutoffs == {1, 2, 3, 4, 5}           # random cutoff in [1, num_ws)
    for m in mixed:
        k = int((m[0, :, 0] == 0).sum())
        assert (m[:, :k] == 0).all() and (m[:, k:] == 1).all()
    assert all(torch.equal(mix_styles(ws, lambda: other, prob=0.0), ws) for _ in range(5))
    share = sum(not torch.equal(mix_styles(ws, lambda: other, 0.9), ws) for _ in range(400))
    assert 320 < share < 400


# -- the phases on stand-in networks -----------------------------------------------------------

class StandInG(nn.Module):
    """The contract's Generator API with a linear mapping and a linear synthesis."""

    def __init__(self, z_dim: int = 4, num_ws: int = 3, res: int = 4):
        super().__init__()
        self.mapping = StandInMapping(z_dim, num_ws)
        self.synthesis = StandInSynthesis(res)


class StandInSynthesis(nn.Module):
    def __init__(self, res: int):
        super().__init__()
        self.fc = nn.Linear(4, 3 * res * res)
        self.res = res
        self.calls: list[int] = []

    def forward(self, ws, noise_mode="random", force_fp32=False):
        self.calls.append(len(ws))
        return self.fc(ws.mean(1)).view(-1, 3, self.res, self.res)


class StandInMapping(nn.Module):
    def __init__(self, z_dim: int, num_ws: int):
        super().__init__()
        self.fc = nn.Linear(z_dim, 4)
        self.num_ws = num_ws
        self.register_buffer("w_avg", torch.zeros(4))

    def forward(self, z, c, truncation_psi=1.0, truncation_cutoff=None, update_emas=False):
        w = self.fc(z)
        if update_emas:
            self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, 0.995))
        return w[:, None].repeat(1, self.num_ws, 1)


class StandInD(nn.Module):
    def __init__(self, res: int = 4):
        super().__init__()
        self.fc = nn.Linear(3 * res * res, 1)

    def forward(self, img, c, force_fp32=False):
        return self.fc(img.flatten(1))


def stand_in_loss(**settings) -> StyleGAN2Loss:
    torch.manual_seed(0)
    s = LossSettings(**{"gamma": 1.0, "pl_weight": 2.0, "style_mixing": 0.9, "r1_interval": 16,
                        "pl_interval": 4, **settings})
    return StyleGAN2Loss(StandInG(), StandInD(), s)


def test_phase_losses_on_stand_ins():
    loss = stand_in_loss(gamma=0.5)
    z, c, reals = torch.randn(8, 4), torch.zeros(8, 0), torch.randn(8, 3, 4, 4)
    value, stats = loss.generator_main(z, c)
    assert all(isinstance(v, torch.Tensor) and v.ndim == 0 and not v.requires_grad
               for v in stats.values())       # logged without waiting for the device
    assert value.item() == pytest.approx(stats["loss_g"].item()) and value.item() > 0
    value, stats, real_logits = loss.discriminator_main(reals, c, z, c)
    assert real_logits.shape == (8, 1) and not real_logits.requires_grad
    assert loss.G.mapping.w_avg.abs().sum() > 0      # the fakes for D track w_avg
    # R1 of a linear D is ||weight||^2; the phase scales it by gamma / 2 and the interval.
    value, stats, r1_logits = loss.discriminator_reg(reals, c)
    assert r1_logits.shape == (8, 1) and not r1_logits.requires_grad   # counted by ADA too
    w2 = loss.D.fc.weight.square().sum().item()
    assert stats["r1"].item() == pytest.approx(w2, rel=1e-5)
    assert value.item() == pytest.approx(w2 * 0.5 / 2 * 16, rel=1e-5)


def test_generator_reg_runs_on_half_the_batch_and_tracks_pl_mean():
    loss = stand_in_loss(style_mixing=0.0)
    value, stats = loss.generator_reg(torch.randn(8, 4), torch.zeros(8, 0))
    assert loss.G.synthesis.calls == [4]
    assert stats["pl_mean"] > 0 and loss.pl_mean.item() == pytest.approx(stats["pl_mean"].item())
    assert value.item() == pytest.approx(stats["pl"].item() * 2.0 * 4, rel=1e-6)
    value.backward()
    assert loss.G.synthesis.fc.weight.grad is not None


# -- the architecture --------------------------------------------------------------------------

def tiny_model(**overrides):
    import ganzoo
    torch.manual_seed(0)
    return ganzoo.create("stylegan2-ada", ganzoo.DataSpec(16, 3, 5), cfg="tiny", **overrides)


def test_summary_at_64_auto_has_the_published_totals():
    """The network.txt of `--cfg auto` at 64x64 ends in the Appendix B totals."""
    import ganzoo
    model = ganzoo.create("stylegan2-ada", ganzoo.DataSpec(64, 3), cfg="auto")
    assert model.preferred_batch() == 32
    lines = model.network_summary(32).splitlines()
    totals = [line.split() for line in lines if line.startswith("Total")]
    assert totals == [["Total", "22243608", "11632", "-", "-"],
                      ["Total", "23407361", "288", "-", "-"]]
    assert "[32, 3, 64, 64]" in "\n".join(lines)


def test_optimisers_carry_the_lazy_correction():
    model = tiny_model()
    (g,), (d,) = model.opt_g.param_groups, model.opt_d.param_groups
    assert g["lr"] == pytest.approx(0.0025 * 4 / 5) and g["betas"][1] == pytest.approx(0.99 ** 0.8)
    assert d["lr"] == pytest.approx(0.0025 * 16 / 17)
    assert d["betas"] == (0.0, pytest.approx(0.99 ** (16 / 17))) and d["eps"] == 1e-8


def test_lazy_phases_run_on_their_intervals():
    """Gmain and Dmain every minibatch, Greg every 4th, Dreg every 16th (counting from 0):
    G takes 1 + 1/4 Adam steps per minibatch, D 1 + 1/16."""
    model = tiny_model(pl_interval=2, r1_interval=3)
    reals = torch.rand(4, 3, 16, 16) * 2 - 1
    for _ in range(6):
        model.train_step(reals, None)
    step = lambda opt: next(iter(opt.state.values()))["step"].item()  # noqa: E731
    assert (step(model.opt_g), step(model.opt_d)) == (6 + 3, 6 + 2)
    assert model.batch_idx == 6 and model.images_seen == 24


def test_batch_must_fit_the_minibatch_stddev_group():
    with pytest.raises(GanzooError, match="--batch 6 .* group 4"):
        tiny_model().train_step(torch.zeros(6, 3, 16, 16), None)


def test_cond_needs_labels():
    import ganzoo
    with pytest.raises(GanzooError, match="--cond: the data has no labels"):
        ganzoo.create("stylegan2-ada", ganzoo.DataSpec(16, 3), cfg="tiny", cond=True)


def test_generate_is_seeded_and_leaves_training_rng_alone():
    model = tiny_model()
    for name, param in model.ema.model.named_parameters():
        if name.endswith("noise_strength"):     # zero at initialisation: noise has no effect
            param.data.fill_(0.5)
    torch.manual_seed(1)
    state = torch.get_rng_state()
    a = model.generate(3, seed=5, noise_mode="random")
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, model.generate(3, seed=5, noise_mode="random"))
    assert not torch.equal(a, model.generate(3, seed=5, noise_mode="const"))
    same = model.generate(2, seed=7, truncation_psi=0.0)
    assert torch.equal(same[0], same[1]) and a.abs().max() <= 1


# -- end to end through the command line -------------------------------------------------------

TINY = ["--data", "shapes", "--resolution", "16", "--cfg", "tiny", "--tick", "0.032", "-q"]


def final_checkpoint(out):
    from ganzoo.checkpoint import checkpoints_of, read_checkpoint
    run = next(out.iterdir())
    return run, read_checkpoint(checkpoints_of(run)[-1])


def test_tiny_run_writes_network_txt_and_resume_continues_exactly(tmp_path):
    """A run stopped at 0.064 kimg and resumed to 0.128 ends where an uninterrupted run does:
    the same weights, optimiser moments, pl_mean, ADA p and controller state, and kimg
    (--ada-kimg 1 makes p move a visible amount every 4 minibatches)."""
    from conftest import run_ganzoo
    from ganzoo.checkpoint import flat_tensors
    common = ["train", "stylegan2-ada", *TINY, "--ada-kimg", "1", "--snap", "0.064"]
    done = run_ganzoo(*common, "--kimg", "0.128", "--out", "a", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = run_ganzoo(*common, "--kimg", "0.064", "--out", "b", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = run_ganzoo("train", "stylegan2-ada", "--resume", "latest", "--out", "b",
                      "--kimg", "0.128", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run_a, a), (run_b, b) = final_checkpoint(tmp_path / "a"), final_checkpoint(tmp_path / "b")
    assert a["progress"]["images"] == b["progress"]["images"] == 128
    assert a["state"]["ada"] == b["state"]["ada"] and a["state"]["ada"]["p"] > 0
    assert a["state"]["augment_p"] == b["state"]["augment_p"]
    assert a["state"]["augment_p"] == pytest.approx(a["state"]["ada"]["p"])   # float32 buffer
    assert a["state"]["batch_idx"] == b["state"]["batch_idx"] == 8
    ta, tb = flat_tensors(a["state"]), flat_tensors(b["state"])
    assert ta.keys() == tb.keys()
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differ, differ
    config = json.loads((run_a / "config.json").read_text())
    assert config["train"]["batch"] == 16                 # from --cfg tiny
    assert config["config"]["gamma"] == 0.05 and config["config"]["map"] == 2
    table = (run_a / "network.txt").read_text()
    assert table.startswith("Generator") and "Discriminator" in table
    assert "[16, 3, 16, 16]" in table
    stats = [json.loads(line) for line in (run_b / "stats.jsonl").read_text().splitlines()]
    assert [s["kimg"] for s in stats] == [0.032, 0.064, 0.096, 0.128]
    assert {"loss_g", "loss_d", "r1", "pl", "augment_p", "rt"} <= stats[-1].keys()
    assert stats[-1]["augment_p"] > 0


def test_generate_options_on_a_trained_run(cli, tmp_path):
    from PIL import Image
    assert cli("train", "stylegan2-ada", *TINY, "--kimg", "0.032").code == 0
    run = next((tmp_path / "runs").iterdir())

    def images(out, *args):
        r = cli("generate", "--checkpoint", str(run), "--seeds", "0-1", "--out", out, *args)
        assert r.code == 0, r.err
        return [Image.open(tmp_path / out / f"seed000{i}.png").tobytes() for i in (0, 1)]

    truncated = images("t", "--trunc", "0")
    assert truncated[0] == truncated[1]          # psi 0: every seed draws the average w
    plain = images("p")
    assert plain[0] != plain[1]
    assert images("p2") == plain                 # const noise: the same seed, the same image
    images("r", "--noise-mode", "random")
    r = cli("generate", "--checkpoint", str(run), "--class", "1")
    assert r.code == 1 and "unconditional" in r.err and "Traceback" not in r.err
    assert "train it with --cond" in r.err


def test_conditional_run_generates_each_class(cli, tmp_path):
    from PIL import Image
    loud = [a for a in TINY if a != "-q"]
    r = cli("train", "stylegan2-ada", *loud, "--kimg", "0.032", "--cond", "--mirror",
            "--gamma", "0.125")
    assert r.code == 0, r.err
    assert "Generator" in r.err and "Discriminator" in r.err     # the summary, printed
    run = next((tmp_path / "runs").iterdir())
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["cond"] and config["train"]["xflip"]
    assert config["config"]["gamma"] == 0.125                   # parsed as a float
    assert Image.open(run / "final.png").size[0] == 5 * 16    # one column per class
    per_class = []
    for k in range(5):
        r = cli("generate", "--checkpoint", str(run), "--seeds", "3", "--class", str(k),
                "--out", "g")
        assert r.code == 0, r.err
        per_class.append(Image.open(tmp_path / "g" / f"seed0003-class{k}.png").tobytes())
    assert len(set(per_class)) == 5              # the class changes the image
    r = cli("generate", "--checkpoint", str(run), "--seeds", "0-2", "--class", "all",
            "--out", "all")
    assert r.code == 0, r.err
    assert Image.open(tmp_path / "all" / "grid.png").size[0] >= 5 * 16


def test_architectures_without_a_summary_or_noise_inputs(cli, trained_run):
    """The core's seams stay optional: dcgan writes no network.txt and refuses --noise-mode."""
    assert not (trained_run / "network.txt").exists()
    r = cli("generate", "--checkpoint", str(trained_run), "--noise-mode", "const")
    assert r.code == 1 and "dcgan has no noise inputs" in r.err
