"""Augmentation and LeCam for every GANArchitecture (ganzoo/augment, ganzoo/adversarial.py)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import ganzoo
from conftest import TINY_DCGAN
from ganzoo import DataSpec
from ganzoo.augment import augmentation, augmentation_names, register_augmentation
from ganzoo.augment import diffaugment, registry
from ganzoo.augment.lecam import LeCam
from ganzoo.augment.state import AugmentPolicy
from ganzoo.checkpoint import checkpoints_of, flat_tensors, read_checkpoint
from ganzoo.data import PrepareOptions, resolve_data
from ganzoo.registry import get_registry

BUILT_IN = ["color", "translation", "cutout", "bgc", "blit", "geom"]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- each augmentation: differentiable, identity at p = 0 ------------------------------------

@pytest.mark.parametrize("name", BUILT_IN)
def test_augmentation_is_differentiable(name):
    """gradcheck on small double inputs; the same draws each call (a seeded generator)."""
    op = augmentation(name).fn
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: op(t, 1.0, _gen(3)), (x,))


@pytest.mark.parametrize("name", ["color", "translation", "cutout"])
def test_diffaugment_has_second_derivatives(name):
    """A gradient penalty taken through the augmentation needs the double backward."""
    op = augmentation(name).fn
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: op(t, 1.0, _gen(4)), (x,))


@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize("channels", [1, 3])
def test_augmentation_is_identity_at_p0(name, channels):
    x = torch.randn(4, channels, 16, 16)
    assert torch.equal(augmentation(name).fn(x, 0.0, _gen()), x)
    assert torch.equal(AugmentPolicy(tuple(BUILT_IN), 0.0)(x), x)
    assert not torch.equal(augmentation(name).fn(x, 1.0, _gen()), x)


@pytest.mark.parametrize("name", ["color", "translation", "cutout"])
def test_samples_that_do_not_draw_the_op_are_untouched(name):
    x = torch.randn(64, 3, 8, 8)
    out = augmentation(name).fn(x, 0.5, _gen(1))
    same = (out == x).flatten(1).all(1)
    assert 10 < same.sum() < 54           # about half, and those bit-exact


def test_translation_shifts_whole_pixels_with_zero_fill():
    x = torch.arange(16.0).reshape(1, 1, 4, 4) + 1
    out = diffaugment.translate(x, torch.tensor([1]), torch.tensor([-1]))
    expected = torch.tensor([[0, 5, 6, 7], [0, 9, 10, 11], [0, 13, 14, 15], [0, 0, 0, 0.]])
    assert torch.equal(out[0, 0], expected)
    shifts = torch.cat([diffaugment._shifts(torch.zeros(256, 1, 32, 32), 32, _gen(s))
                        for s in range(4)])
    assert shifts.min() == -4 and shifts.max() == 4       # 1/8 of 32


def test_cutout_zeroes_a_square_of_half_the_size():
    mask = diffaugment.cutout_mask(2, 16, 16, torch.tensor([8, 0]), torch.tensor([8, 15]),
                                   torch.zeros(1))
    assert (mask[0] == 0).sum() == 64                      # 8 x 8, inside the image
    assert (mask[1] == 0).sum() == 4 * 5    # clipped: rows -4..3, columns 11..18
    assert mask[0, 0, 4:12, 4:12].eq(0).all()


def test_color_ranges_follow_the_paper():
    """Brightness alone (a grey image keeps saturation and contrast out): +- 0.5."""
    x = torch.zeros(4096, 3, 2, 2)
    shift = diffaugment.color(x, 1.0, _gen(2))[:, 0, 0, 0]
    assert -0.5 <= shift.min() < -0.45 and 0.45 < shift.max() <= 0.5


# --- the registry --------------------------------------------------------------------------

def test_a_plugin_can_register_an_augmentation():
    def invert(x, p, generator=None):
        return -x if p > 0 else x
    register_augmentation("test-invert", invert, "negates")
    try:
        assert "test-invert" in augmentation_names()
        with pytest.raises(ganzoo.GanzooError, match="registered already"):
            register_augmentation("test-invert", invert)
        model = ganzoo.create("dcgan", DataSpec(32, 3), augment="fixed", augment_p=1.0,
                              augment_policy="test-invert,translation", base_channels=8,
                              max_channels=16, latent_dim=8)
        assert model.small_data.policy.names == ("test-invert", "translation")
        x = torch.ones(2, 3, 32, 32)
        assert (model.small_data.augment(x) <= 0).all()
    finally:
        del registry._REGISTRY["test-invert"]


@pytest.mark.parametrize("args, message", [
    (["--augment", "fixed"], "--augment fixed needs --augment-p"),
    (["--augment", "diffaug", "--augment-policy", "colour"],
     "--augment-policy: unknown augmentation 'colour'; known: bgc, blit, color, cutout"),
    (["--augment-p", "0.5"], "--augment-p and --augment-policy need --augment"),
    (["--augment", "ada", "--augment-p", "1.5"], "--augment-p must be in [0, 1], got 1.5"),
    (["--augment", "ada", "--ada-target", "1"], "--ada-target must be < 1, got 1"),
    (["--lecam", "-1"], "--lecam must be >= 0, got -1"),
])
def test_bad_augment_options_are_one_line(cli, args, message):
    r = cli("train", "dcgan", "--data", "shapes", *TINY_DCGAN, "--kimg", "0.016", *args)
    assert r.code == 1, r.err
    assert message in r.err and len(r.err.strip().splitlines()) == 1, r.err


# --- ADA's controller, for every GAN -------------------------------------------------------

class RigidD(nn.Module):
    """Scores an image by its mean brightness: ``sign`` +1 -> reals (all +1 here) score high,
    fakes (G's tanh output, mean near 0) low: a D that always wins; -1: one that loses."""

    def __init__(self, sign: float):
        super().__init__()
        self.sign, self.unused = sign, nn.Parameter(torch.zeros(()))

    def forward(self, x, labels=None):
        return self.sign * 10 * (x.mean(dim=(1, 2, 3)) - 0.5) + 0 * self.unused


GANS = [("dcgan", {}), ("wgan-gp", {"dim": 8}), ("cgan", {})]


def _rigged(arch: str, options: dict, sign: float):
    data = DataSpec(32, 3, num_classes=3 if arch == "cgan" else 0)
    small = {} if arch == "wgan-gp" else {"base_channels": 8, "max_channels": 16}
    model = ganzoo.create(arch, data, augment="ada", ada_kimg=1.0, latent_dim=8,
                          **small, **options)
    model.D = RigidD(sign)
    model.opt_d = torch.optim.Adam(model.D.parameters())
    return model


@pytest.mark.parametrize("arch, options", GANS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_ada_moves_p_the_right_way_for_every_gan(arch, options, sign):
    torch.manual_seed(0)
    model = _rigged(arch, options, sign)
    batch = 8 * model.batches_per_step
    reals = torch.ones(batch, 3, 32, 32)
    labels = torch.zeros(batch, dtype=torch.long) if arch == "cgan" else None
    ps = [model.train_step(reals, labels)["augment_p"] for _ in range(8)]
    if sign > 0:   # D wins: r_t = 1 > 0.6, p rises by 4 steps' images / 1 kimg per update
        step = 4 * batch / 1000
        assert ps == pytest.approx([0, 0, 0, step, step, step, step, 2 * step])
        assert model.small_data.ada.rt > 0.6
    else:          # D loses: r_t = -1, p stays at 0
        assert ps == [0.0] * 8 and model.small_data.ada.rt == -1.0


def test_every_term_d_sees_is_augmented_including_the_gradient_penalty():
    torch.manual_seed(0)
    model = ganzoo.create("wgan-gp", DataSpec(32, 3), augment="diffaug", dim=8, n_critic=2,
                          latent_dim=8)
    seen, augment = [], model.small_data.augment

    def counting(images):
        seen.append(images.shape[0])
        return augment(images)
    model.small_data.augment = counting
    model.train_step(torch.rand(16, 3, 32, 32) * 2 - 1, None)
    # Per critic step: reals, fakes, the penalty's interpolates; then G's fakes.
    assert len(seen) == 3 * 2 + 1


# --- LeCam ---------------------------------------------------------------------------------

def test_lecam_is_zero_when_the_averages_equal_the_logits():
    lecam = LeCam(1.0, torch.device("cpu"))
    real, fake = torch.full((8,), 0.7), torch.full((8,), -0.3)
    lecam.ema_real, lecam.ema_fake = real.mean(), fake.mean()
    lecam.update(real, fake)                     # an average of equal values stays equal
    assert lecam.penalty(fake.clone(), real.clone()) == 0   # D(x) = ema_fake, D(G(z)) = ema_real
    # Otherwise ||relu(D(x) - ema_fake)||^2 + ||relu(ema_real - D(G(z)))||^2, times the weight.
    lecam = LeCam(0.5, torch.device("cpu"))
    r, f = torch.tensor([1.0, -1.0]), torch.tensor([-2.0, 0.5])
    lecam.ema_real, lecam.ema_fake = torch.tensor(0.25), torch.tensor(-0.5)
    expected = 0.5 * ((1.5 ** 2 + 0) / 2 + (2.25 ** 2 + 0) / 2)
    assert lecam.penalty(r, f).item() == pytest.approx(expected)


def test_lecam_averages_decay_at_0_99():
    lecam = LeCam(1.0, torch.device("cpu"))
    lecam.update(torch.full((4,), 2.0), torch.full((4,), -1.0))
    assert lecam.ema_real.item() == pytest.approx(0.02)
    assert lecam.ema_fake.item() == pytest.approx(-0.01)


# --- resume --------------------------------------------------------------------------------

AUGMENTED = ["train", "dcgan", "--data", "shapes", *TINY_DCGAN, "--tick", "0.032", "-q",
             "--augment", "ada", "--augment-p", "0.5", "--ada-kimg", "0.5",
             "--augment-policy", "color,translation,cutout,bgc", "--lecam", "0.1"]


def test_resume_with_augmentation_equals_an_uninterrupted_run(cli, tmp_path):
    """Stopped after 3 steps (inside ADA's 4-step interval) and resumed: weights, p, ADA's
    accumulators and LeCam's averages end bit-identical to a straight run."""
    assert cli(*AUGMENTED, "--kimg", "0.128", "--snap", "0.048", "--out", "a").code == 0
    assert cli(*AUGMENTED, "--kimg", "0.048", "--snap", "0.048", "--out", "b").code == 0
    r = cli("train", "dcgan", "--resume", "latest", "--out", "b", "--kimg", "0.128", "-q")
    assert r.code == 0, r.err
    a, b = (read_checkpoint(checkpoints_of(next((tmp_path / d).iterdir()))[-1])["state"]
            for d in ("a", "b"))
    ta, tb = flat_tensors(a), flat_tensors(b)
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert "small_data.lecam.ema_real" in ta
    assert a["small_data"]["p"] == b["small_data"]["p"] != 0.5     # p moved
    assert a["small_data"]["ada"] == b["small_data"]["ada"]
    assert {"lecam", "ada", "p"} <= a["small_data"].keys()


# --- no leak -------------------------------------------------------------------------------

GREY = 0.1       # |x| below this: the zero (mid-grey) that cutout and translation fill with


def leak_rates(images: torch.Tensor) -> tuple[float, float]:
    """Share of images [N, C, H, W] in [-1, 1] showing a cutout square (an 8 x 8 patch, a
    clipped quarter of cutout's H/2 x W/2 square at 32 px, every pixel within GREY of zero)
    and share showing a translation border (a whole outermost row or column within GREY of
    zero)."""
    grey = (images.abs() < GREY).all(dim=1).float()[:, None]          # [N, 1, H, W]
    squares = nn.functional.avg_pool2d(grey, 8, stride=1) == 1
    border = torch.stack([grey[:, 0, 0, :].all(1), grey[:, 0, -1, :].all(1),
                          grey[:, 0, :, 0].all(1), grey[:, 0, :, -1].all(1)], 1)
    return squares.flatten(1).any(1).float().mean().item(), border.any(1).float().mean().item()


def _samples_after(cli, tmp_path, out: str, *augment: str) -> torch.Tensor:
    r = cli("train", "dcgan", "--data", "shapes", *TINY_DCGAN, "--kimg", "3", "-q",
            "--out", out, *augment)
    assert r.code == 0, r.err
    run = next((tmp_path / out).iterdir())
    return ganzoo.load_checkpoint(str(checkpoints_of(run)[-1])).model.generate(256, seed=0)


@pytest.mark.slow
def test_no_leak_of_cutout_or_translation_into_samples(cli, tmp_path):
    """Trained on unaugmented shapes with translation and cutout at p = 1, G does not draw
    the grey squares or borders D saw on every real. Measured on 256 samples against the
    real data (none of either) and against the same run without augmentation, whose G at
    3 kimg has not yet darkened every border (measured: 15% of samples; augmented 5%). The
    augmented reals show them nearly always, so the measure would see a leak."""
    reals = resolve_data("shapes", PrepareOptions(32, 3, 256), get_registry()).images
    reals = torch.from_numpy(reals).float() / 127.5 - 1
    assert leak_rates(reals) == (0.0, 0.0)
    augmented = AugmentPolicy(("translation", "cutout"), 1.0)(reals, _gen(0))
    squares, borders = leak_rates(augmented)
    assert squares == 1.0 and borders > 0.95      # measured: 1.0 and 0.99
    torch.manual_seed(0)
    plain = leak_rates(_samples_after(cli, tmp_path, "plain"))
    leaky = leak_rates(_samples_after(cli, tmp_path, "aug", "--augment", "fixed",
                                      "--augment-p", "1", "--augment-policy",
                                      "translation,cutout"))
    assert leaky[0] <= 0.02 and leaky[0] <= plain[0] + 0.02, (leaky, plain)
    assert leaky[1] <= plain[1] + 0.02, (leaky, plain)
