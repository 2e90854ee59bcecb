"""`ganzoo train --gpus N`: the same command again in N processes, which join as the ranks
of one data-parallel job."""
from __future__ import annotations

import torch

from ganzoo import distributed
from ganzoo.errors import GanzooError


def launch_processes(n: int, device: str, argv: list[str]) -> int:
    """``ganzoo train --gpus N``: the same command in N processes through torch.distributed's
    launcher (what torchrun --standalone does)."""
    if n < 1:
        raise GanzooError(f"--gpus must be >= 1, got {n}")
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        have = torch.cuda.device_count()
        if n > have:
            raise GanzooError(f"--gpus {n}: this machine has {have} CUDA device(s)"
                              + ("" if have else "; use --device cpu for CPU processes"))
    elif device == "auto":
        raise GanzooError(f"--gpus {n}: no CUDA device is available; add --device cpu to "
                          f"train in {n} CPU processes")
    # Each process runs the command as given, less --gpus, so it trains instead of launching.
    return distributed.launch(n, without_option(argv, "--gpus"))


def without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` less ``--name VALUE`` / ``--name=VALUE``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out
