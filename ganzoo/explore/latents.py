"""What every exploration tool shares: the latent-space check, seeds to working latents,
interpolation, and rendering one image at a time."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ganzoo.architecture import Architecture, LatentSpace
from ganzoo.errors import GanzooError


def require_space(model: Architecture, tool: str, *, mixing: bool = False,
                  truncation: bool = False) -> LatentSpace:
    """The model's latent space, or one line saying what ``tool`` needs that it lacks."""
    space = model.latent_space()
    if space is None:
        raise GanzooError(f"{tool}: {model.name} has no latent space to explore "
                          "(it declares none: Architecture.latent_space)")
    if mixing and not space.mixing:
        raise GanzooError(f"{tool}: {model.name} has no per-layer styles to mix (style "
                          "mixing needs a style-based generator such as stylegan2-ada)")
    if truncation and not space.truncation:
        raise GanzooError(f"{tool}: {model.name} does not support truncation (no mean "
                          "latent; truncation needs a style-based generator such as "
                          "stylegan2-ada)")
    return space


def class_labels(model: Architecture, k: int | None) -> Tensor | None:
    """Class ``k`` as a [1] tensor for a conditional model (class 0 when none is asked for:
    what ``generate`` draws for a single image); None for an unconditional one."""
    if k is not None and not model.conditional:
        raise GanzooError(f"--class: {model.name} is unconditional; {model.unconditional_hint}")
    if not model.conditional:
        return None
    k = 0 if k is None else int(k)
    if not 0 <= k < max(1, model.data.num_classes):
        raise GanzooError(f"--class {k}: no such class (0-{model.data.num_classes - 1})")
    return torch.tensor([k], device=model.device)


def seed_latents(model: Architecture, seeds: Sequence[int], labels: Tensor | None,
                 truncation_psi: float = 1.0) -> Tensor:
    """[len(seeds), layers, dim]: each seed's z drawn exactly as ``generate`` draws it,
    mapped into the working space (one seed at a time, so batching cannot change a bit)."""
    return torch.cat([model.map_latents(model.seeded_normal(1, model.latent_space().z_dim, s),
                                        labels, truncation_psi) for s in seeds])


@torch.no_grad()
def render(model: Architecture, latents: Tensor, labels: Tensor | None,
           noise: dict[str, Tensor] | None = None) -> Tensor:
    """Images NCHW in [-1, 1], clamped as ``generate`` clamps them. One latent per forward
    pass: the convolutions of a batch may round differently from those of one image, and
    a frame must equal ``generate --seeds`` of its seed to the last bit."""
    return torch.cat([model.render_latents(latent[None], labels, noise=noise).clamp(-1, 1)
                      for latent in latents])


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between latents (per vector, along the last axis); the
    norm is interpolated linearly, so Gaussian samples stay on their shell."""
    if t == 0:
        return a.clone()
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na, b / nb
    omega = torch.acos((ua * ub).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so
    return direction * torch.lerp(na, nb, t)


def interpolate(space: LatentSpace, a: Tensor, b: Tensor, t: float) -> Tensor:
    """The space's own interpolation: spherical for Gaussian z, linear in W."""
    return slerp(a, b, t) if space.interpolation == "spherical" else torch.lerp(a, b, t)
