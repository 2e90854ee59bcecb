"""Small-data training aids: start from another run's weights (``--init``) and freeze the
discriminator's first blocks (``--freeze-d N``, Mo et al. 2020, "Freeze the Discriminator").

``--init`` copies the networks' weights out of a checkpoint of the same architecture, through
the architecture's own ``state_dict``/``load_state_dict``: every entry of the state that is a
module's state dict (all values tensors) is taken from the checkpoint, everything else
(optimiser moments, counters, schedules, ADA's p) stays fresh. Tensors whose shapes differ
keep their new initialisation only when the class count changed (the class embedding and
projection); any other difference cannot be bridged and is one error line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ganzoo.architecture import Architecture, DataSpec
from ganzoo.errors import GanzooError


@dataclass
class Transfer:
    """What ``--init`` did: tensors copied, and those left at their initialisation."""

    copied: int
    reinitialised: list[str]


def module_states(state: dict) -> dict[str, dict]:
    """The entries of an architecture state that are module state dicts (all tensors)."""
    return {k: v for k, v in state.items() if isinstance(v, dict) and v
            and all(isinstance(t, torch.Tensor) for t in v.values())}


def check_compatible(arch: Architecture, data: dict, checkpoint: Path) -> None:
    """One line for what --init cannot bridge: another architecture, resolution or channels."""
    if data["architecture"] != arch.name:
        raise GanzooError(f"--init {checkpoint}: it is a {data['architecture']} checkpoint, "
                          f"not {arch.name}")
    theirs = DataSpec.from_dict(data["data_spec"])
    for what in ("resolution", "channels"):
        if getattr(theirs, what) != getattr(arch.data, what):
            raise GanzooError(f"--init {checkpoint}: trained at {what} {getattr(theirs, what)}, "
                              f"but this run has {getattr(arch.data, what)}")


def transfer_weights(arch: Architecture, data: dict, checkpoint: Path) -> Transfer:
    """Load the networks of checkpoint ``data`` into ``arch`` (see the module docstring)."""
    check_compatible(arch, data, checkpoint)
    classes_changed = DataSpec.from_dict(data["data_spec"]).num_classes != arch.data.num_classes
    mine = arch.state_dict()
    theirs = module_states(data["state"])
    # A source without a weight average (dcgan's default) seeds ours from its generator.
    if "G_ema" not in theirs and "G" in theirs:
        theirs["G_ema"] = theirs["G"]
    copied, reinitialised = 0, []
    for key, module_state in module_states(mine).items():
        if key not in theirs:
            continue
        merged = {}
        for name, tensor in module_state.items():
            source = theirs[key].get(name)
            if source is not None and source.shape == tensor.shape:
                merged[name] = source
                copied += 1
                continue
            if not classes_changed:
                have = "missing" if source is None else f"shape {list(source.shape)}"
                raise GanzooError(f"--init {checkpoint}: {key}.{name} is {have} there but "
                                  f"{list(tensor.shape)} here (different architecture "
                                  "options?); nothing can bridge that")
            merged[name] = tensor
            reinitialised.append(f"{key}.{name}")
        mine[key] = merged
    if copied == 0:
        raise GanzooError(f"--init {checkpoint}: it holds no network weights of {arch.name} "
                          "(nothing to start from)")
    arch.load_state_dict(mine)
    return Transfer(copied, reinitialised)


def frozen_parameters(arch: Architecture, blocks: int) -> list[nn.Parameter]:
    """The parameters of D's first ``blocks`` blocks (from the image side)."""
    if blocks <= 0:
        return []
    available = arch.discriminator_blocks()
    if not available:
        raise GanzooError(f"--freeze-d: {arch.name} does not name its discriminator blocks")
    if blocks >= len(available):
        raise GanzooError(f"--freeze-d {blocks}: {arch.name}'s discriminator has "
                          f"{len(available)} blocks here; freeze at most {len(available) - 1}")
    return [p for block in available[:blocks] for p in block.parameters()]


class FrozenParameters:
    """Keeps parameters unchanged by dropping their gradients before every optimiser step
    (Adam skips parameters without a gradient, so they stay bit-identical)."""

    def __init__(self, params: list[nn.Parameter], optimizers):
        self.ids = {id(p) for p in params}
        self.handles = [opt.register_step_pre_hook(self._drop) for opt in optimizers] \
            if params else []

    def _drop(self, optimizer, args, kwargs) -> None:
        for group in optimizer.param_groups:
            for p in group["params"]:
                if id(p) in self.ids:
                    p.grad = None

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def sequential_blocks(seq: nn.Sequential) -> list[nn.Module]:
    """A Sequential cut into blocks, each starting at a layer with weights (a convolution
    with the normalisation and activation after it)."""
    blocks: list[list[nn.Module]] = []
    for layer in seq:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) or not blocks:
            blocks.append([layer])
        else:
            blocks[-1].append(layer)
    return [nn.Sequential(*b) for b in blocks]
