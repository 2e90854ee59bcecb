"""``ganzoo project``: find the latent whose image matches a target photo.

Style-based generators are projected into W as the StyleGAN2 paper describes (section 5 and
appendix D): one w, started at the mean of many mapped samples, optimised with Adam under a
learning rate that ramps up and then down (cosine), with Gaussian noise added to w that
decays to zero over the first three quarters; the per-layer noise maps are optimised too,
each renormalised to zero mean and unit variance after every step and kept from carrying
the image by a penalty on their autocorrelation at every scale down to 8x8. Other
generators are projected into z, started from the best of a few seeds, with a penalty that
keeps |z| on the Gaussian shell.

The distance is pixel MSE plus, optionally, the squared distance of a feature extractor's
features (relative to the target's feature energy, so the weight does not depend on the
extractor's scale).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ganzoo.architecture import Architecture, LatentSpace
from ganzoo.errors import GanzooError
from ganzoo.explore.latents import class_labels, require_space
from ganzoo.features import FeatureExtractor

W_AVG_SAMPLES = 10_000      # mapped samples for w's mean and spread (the paper's count)
Z_START_SEEDS = 64          # seeds tried as z's starting point
MAX_STEPS = 1_000_000       # more is taken for a typo (the paper uses 1000)
SEED_LIMIT = 2 ** 64        # what torch.Generator.manual_seed takes


@dataclass(frozen=True)
class ProjectOptions:
    steps: int = 1000
    lr: float = 0.1
    initial_noise: float = 0.05       # std of the noise on w at step 0, times W's spread
    noise_ramp: float = 0.75          # fraction of the steps over which that noise decays
    lr_rampup: float = 0.05           # fraction of the steps the learning rate ramps up
    lr_rampdown: float = 0.25         # fraction of the steps it ramps down (cosine)
    noise_regularize: float = 1e5     # weight of the noise maps' autocorrelation penalty
    class_index: int | None = None
    seed: int = 0                     # the w noise and the starting noise maps
    video_every: int = 0              # keep a frame every N steps (0: no video)


def _integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) \
        and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def check_options(options: ProjectOptions) -> None:
    """One line naming the first option out of its range (the options the CLI sets by their
    flag, the others by their field name), before anything is computed."""
    o = options
    if not (_integer(o.steps) and 1 <= o.steps <= MAX_STEPS):
        raise GanzooError(f"--steps must be an integer in 1-{MAX_STEPS:,}, got {o.steps!r}")
    if not (_real(o.lr) and o.lr > 0):
        raise GanzooError(f"--lr must be a positive number, got {o.lr!r}")
    if not (_integer(o.seed) and 0 <= o.seed < SEED_LIMIT):
        raise GanzooError(f"--seed must be an integer in 0-{SEED_LIMIT - 1}, got {o.seed!r}")
    if o.class_index is not None and not _integer(o.class_index):
        raise GanzooError(f"--class must be an integer class index, got {o.class_index!r}")
    for name, low, high in (("initial_noise", 0, None), ("noise_ramp", 0, 1),
                            ("lr_rampup", 0, 1), ("lr_rampdown", 0, 1),
                            ("noise_regularize", 0, None)):
        value = getattr(o, name)
        if not (_real(value) and value >= low and (high is None or value <= high)):
            where = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise GanzooError(f"ProjectOptions.{name} must be a number {where}, "
                              f"got {value!r}")
    if not (_integer(o.video_every) and o.video_every >= 0):
        raise GanzooError(f"ProjectOptions.video_every must be an integer >= 0 (0: no "
                          f"video), got {o.video_every!r}")


@dataclass
class Distance:
    """pixel MSE + ``weight`` x relative squared feature distance (no extractor: pixel only)."""

    extractor: FeatureExtractor | None = None
    name: str = ""
    weight: float = 1.0

    def check(self) -> None:
        if not (_real(self.weight) and self.weight >= 0):
            raise GanzooError(f"--feature-lambda must be a number >= 0, got {self.weight!r}")

    def describe(self) -> str:
        if self.extractor is None:
            return "pixel MSE"
        return f"pixel MSE + {self.weight:g} x {self.name} feature distance"

    def features(self, images: Tensor) -> Tensor:
        """Differentiable features of images in [-1, 1]: the extractor's channels and input
        size, resized bilinearly (the metrics' uint8 path has no gradient)."""
        net = self.extractor
        x = images
        want = getattr(net, "input_channels", 3)
        if x.shape[1] != want:
            x = x.mean(1, keepdim=True) if want == 1 else x.expand(-1, want, -1, -1)
        size = net.input_resolution
        if size and x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=size < x.shape[-1])
        return net(x).flatten(1)

    def bind(self, target: Tensor) -> Callable[[Tensor], Tensor]:
        """The distance to ``target`` as a function of the synthesised image."""
        if self.extractor is None:
            return lambda img: F.mse_loss(img, target)
        with torch.no_grad():
            want = self.features(target)
        energy = want.pow(2).mean().clamp_min(1e-8)
        return lambda img: (F.mse_loss(img, target)
                            + self.weight * (self.features(img) - want).pow(2).mean() / energy)


@dataclass
class Projection:
    space: LatentSpace
    latent: Tensor                       # [1, layers, dim] in the working space
    noise: dict[str, Tensor]             # optimised noise maps by name ({} for z)
    image: Tensor                        # [1, C, H, W] in [-1, 1]
    labels: Tensor | None
    distance: str
    pixel_mse: float                     # MSE in [-1, 1] units between image and target
    history: list[float] = field(default_factory=list)    # the loss per step
    frames: list[np.ndarray] = field(default_factory=list)


def load_target(path: Path, resolution: int, channels: int) -> Tensor:
    """A photo as [1, C, R, R] in [-1, 1]: centre-cropped to a square, Lanczos-resized."""
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise GanzooError(f"--target {path}: no such file")
    except (UnidentifiedImageError, OSError) as e:
        raise GanzooError(f"--target {path}: not an image Pillow can read ({e})")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    arr = np.asarray(img, dtype=np.float32).reshape(resolution, resolution, channels)
    return torch.from_numpy(arr).permute(2, 0, 1)[None] / 127.5 - 1


def _ramp(x: float, length: float) -> float:
    """min(1, x / length); a ramp of length 0 is none (1 throughout)."""
    return 1.0 if length <= 0 else min(1.0, x / length)


def learning_rate(options: ProjectOptions, step: int) -> float:
    """Linear ramp up over the first ``lr_rampup`` of the steps, cosine down over the last
    ``lr_rampdown`` (either 0: no ramp)."""
    t = step / max(1, options.steps)
    down = 0.5 - 0.5 * math.cos(_ramp(1 - t, options.lr_rampdown) * math.pi)
    return options.lr * down * _ramp(t, options.lr_rampup)


def w_noise_scale(options: ProjectOptions, step: int) -> float:
    """The std of the noise on w at ``step``, in units of W's spread: ``initial_noise``
    decaying quadratically to zero over the first ``noise_ramp`` of the steps (0: none)."""
    if options.noise_ramp <= 0:
        return 0.0
    t = step / max(1, options.steps)
    return options.initial_noise * max(0.0, 1 - t / options.noise_ramp) ** 2


def noise_penalty(noise: dict[str, Tensor]) -> Tensor | float:
    """Squared autocorrelation of each noise map with itself shifted by one pixel (both
    axes), at its resolution and at each 2x2-averaged one down to 8x8: noise that carries
    image structure is correlated, white noise is not."""
    total = 0.0
    for n in noise.values():
        x = n[None, None]
        while True:
            total = total + (x * x.roll(1, dims=3)).mean() ** 2 \
                + (x * x.roll(1, dims=2)).mean() ** 2
            if x.shape[-1] <= 8:
                break
            x = F.avg_pool2d(x, 2)
    return total


@torch.no_grad()
def normalise_noise(noise: dict[str, Tensor]) -> None:
    for n in noise.values():
        n.sub_(n.mean()).div_(n.std().clamp_min(1e-8))


class frozen_networks:
    """Networks without gradients while projecting (only the latent is optimised): no
    wasted backward work, and no stray .grad left on a model that may train later."""

    def __init__(self, model: Architecture):
        self.params = [p for net in model.networks() for p in net.parameters()]

    def __enter__(self):
        self.was = [p.requires_grad for p in self.params]
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p, was in zip(self.params, self.was):
            p.requires_grad_(was)


def w_statistics(model: Architecture, labels: Tensor | None,
                 samples: int = W_AVG_SAMPLES) -> tuple[Tensor, float]:
    """The mean w [1, layers, dim] of many mapped samples and their spread (RMS distance to
    the mean), which scales the noise added to w."""
    space = model.latent_space()
    gen = torch.Generator().manual_seed(123)
    z = torch.randn(samples, space.z_dim, generator=gen).to(model.device)
    lab = None if labels is None else labels.expand(samples)
    ws = torch.cat([model.map_latents(c, None if lab is None else lab[:len(c)])
                    for c in z.split(1000)])[:, :1]
    mean = ws.mean(0, keepdim=True)
    spread = ((ws - mean).pow(2).sum(-1).mean()).sqrt().item()
    return mean.expand(1, space.layers, -1).clone(), spread


def z_start(model: Architecture, labels: Tensor | None, loss: Callable) -> Tensor:
    """The best of the first seeds' z by the distance: a start in the right basin."""
    space = model.latent_space()
    best, best_loss = None, math.inf
    with torch.no_grad():
        for seed in range(Z_START_SEEDS):
            z = model.seeded_normal(1, space.z_dim, seed)
            value = loss(model.render_latents(model.map_latents(z, labels), labels)).item()
            if value < best_loss:
                best, best_loss = z, value
    return best


def project(model: Architecture, target: Tensor, options: ProjectOptions = ProjectOptions(),
            distance: Distance = Distance(), on_step: Callable[[int], None] | None = None
            ) -> Projection:
    """Optimise a latent (W for a style-based generator, else z) so that the generator's
    image of it matches ``target`` [1, C, R, R] in [-1, 1]."""
    space = require_space(model, "project")
    check_options(options)
    distance.check()
    res, ch = model.data.resolution, model.data.channels
    if tuple(target.shape) != (1, ch, res, res):
        raise GanzooError(f"target of shape {tuple(target.shape)}; the generator draws "
                          f"[1, {ch}, {res}, {res}]")
    if not torch.isfinite(target).all():
        raise GanzooError("target has non-finite values (nan or inf); images are in [-1, 1]")
    target = target.to(model.device)
    labels = class_labels(model, options.class_index)
    loss_of = distance.bind(target)
    with frozen_networks(model):
        if space.style_based:
            result = _project_w(model, space, labels, loss_of, target, options, on_step)
        else:
            result = _project_z(model, space, labels, loss_of, target, options, on_step)
    result.distance = distance.describe()
    return result


def _frame(target: Tensor, image: Tensor) -> np.ndarray:
    from ganzoo.viz import grid_image
    return np.asarray(grid_image(torch.cat([target, image.clamp(-1, 1)]), 2))


def _finish(model, space, latent, noise, labels, target, history, frames) -> Projection:
    with torch.no_grad():
        image = model.render_latents(latent, labels, noise=noise or None).clamp(-1, 1)
    mse = F.mse_loss(image, target).item()
    return Projection(space, latent.detach(), {k: v.detach() for k, v in noise.items()},
                      image, labels, "", mse, history, frames)


def _project_w(model, space, labels, loss_of, target, options, on_step) -> Projection:
    gen = torch.Generator().manual_seed(options.seed)
    w_mean, w_spread = w_statistics(model, labels)
    w = w_mean[:, :1].clone().requires_grad_(True)      # one w for every layer (W, not W+)
    noise = {k: torch.randn(v.shape, generator=gen).to(model.device).requires_grad_(True)
             for k, v in model.noise_maps().items()}
    opt = torch.optim.Adam([w, *noise.values()], betas=(0.9, 0.999), lr=options.lr)
    history, frames = [], []
    for step in range(options.steps):
        sigma = w_spread * w_noise_scale(options, step)
        for group in opt.param_groups:
            group["lr"] = learning_rate(options, step)
        w_noisy = w + torch.randn(w.shape, generator=gen).to(w.device) * sigma
        image = model.render_latents(w_noisy.expand(-1, space.layers, -1), labels,
                                     noise=noise or None)
        loss = loss_of(image) + options.noise_regularize * noise_penalty(noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        normalise_noise(noise)
        history.append(loss.item())
        if options.video_every and step % options.video_every == 0:
            frames.append(_frame(target, image.detach()))
        if on_step:
            on_step(step)
    latent = w.detach().expand(-1, space.layers, -1).clone()
    return _finish(model, space, latent, noise, labels, target, history, frames)


def _project_z(model, space, labels, loss_of, target, options, on_step) -> Projection:
    z = z_start(model, labels, loss_of).clone().requires_grad_(True)
    opt = torch.optim.Adam([z], betas=(0.9, 0.999), lr=options.lr)
    history, frames = [], []
    for step in range(options.steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(options, step)
        image = model.render_latents(model.map_latents(z, labels), labels)
        # |z|^2 of a Gaussian sample is about its dimension: stay on that shell, where
        # the generator was trained, instead of wandering off to where it never was.
        shell = (z.pow(2).sum() / space.z_dim - 1) ** 2
        loss = loss_of(image) + 0.01 * shell
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(loss.item())
        if options.video_every and step % options.video_every == 0:
            frames.append(_frame(target, image.detach()))
        if on_step:
            on_step(step)
    latent = model.map_latents(z.detach(), labels)
    return _finish(model, space, latent, {}, labels, target, history, frames)


# -- files ----------------------------------------------------------------------------------

def save_latent(result: Projection, model: Architecture, path: Path) -> None:
    """The projected latent as .npz: ``w`` [1, num_ws, w_dim] (the key the official tools
    read) or ``z`` [1, z_dim], the noise maps as ``noise:NAME``, the class, the architecture."""
    from ganzoo.atomic import atomic_write
    arrays = {"architecture": np.array(model.name), "space": np.array(result.space.space),
              "class": np.array(-1 if result.labels is None else int(result.labels[0]))}
    latent = result.latent.cpu().numpy()
    if result.space.style_based:
        arrays["w"] = latent
    else:
        arrays["z"] = latent[:, 0]
    arrays.update({f"noise:{k}": v.cpu().numpy() for k, v in result.noise.items()})
    with atomic_write(path) as f:
        np.savez(f, **arrays)


@dataclass
class SavedLatent:
    latent: Tensor                   # [1, layers, dim]
    noise: dict[str, Tensor]
    class_index: int | None


def load_latent(path: Path, model: Architecture) -> SavedLatent:
    """A latent written by :func:`save_latent` (or the official projector's ``w``), checked
    against the model's latent space."""
    space = require_space(model, "--projected")
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise GanzooError(f"--projected {path}: no such file")
    except (ValueError, OSError) as e:
        raise GanzooError(f"--projected {path}: not a .npz file ({e})")
    key = "w" if space.style_based else "z"
    if key not in data:
        raise GanzooError(f"--projected {path}: no '{key}' array ({model.name} takes a "
                          f"{space.space} latent; the file has {', '.join(data.files)})")
    latent = torch.from_numpy(np.asarray(data[key], np.float32))
    if not space.style_based:
        latent = latent[:, None]
    want = (1, space.layers, space.dim)
    if tuple(latent.shape) != want:
        raise GanzooError(f"--projected {path}: {key} has shape {tuple(latent.shape)}; "
                          f"this {model.name} takes {list(want)}")
    noise = {k.split(":", 1)[1]: torch.from_numpy(data[k]).to(model.device)
             for k in data.files if k.startswith("noise:")}
    k = int(data["class"]) if "class" in data else -1
    return SavedLatent(latent.to(model.device), noise, None if k < 0 else k)


def render_saved(model: Architecture, saved: SavedLatent) -> Tensor:
    labels = class_labels(model, saved.class_index if model.conditional else None)
    with torch.no_grad():
        return model.render_latents(saved.latent, labels,
                                    noise=saved.noise or None).clamp(-1, 1)
