"""Run by tests/test_distributed.py under torchrun (2 processes, gloo on 127.0.0.1).

Each rank computes gradients on its half of a fixed global batch and averages them with
ganzoo.distributed; it saves what it ends with to OUT/rank{R}.pt, which the test compares with
one process computing on the whole batch. Not a test module itself (no test_ prefix).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from ganzoo import distributed
from ganzoo.losses import gradient_penalty
from ganzoo_plugins.dcgan.model import Discriminator, Generator
from ganzoo_plugins.wgan_gp.model import Critic

GLOBAL_BATCH = 8


def fixed_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    return (torch.rand(GLOBAL_BATCH, 3, 32, 32, generator=gen) * 2 - 1,
            torch.randn(GLOBAL_BATCH, 16, generator=gen),
            torch.rand(GLOBAL_BATCH, 1, 1, 1, generator=gen))


def networks() -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    return (Discriminator(32, 3, 8, 16), Generator(16, 32, 3, 8, 16), Critic(32, 3, 8, "layer"))


def gradients(reals, z, eps, D, G, C) -> dict[str, torch.Tensor]:
    """BatchNorm D and G losses, and a critic loss with gradient penalty (double backward)."""
    loss = torch.nn.functional.softplus(-D(reals)).mean() + D(G(z)).mean()
    fakes = G(z).detach()
    loss = loss + C(fakes).mean() - C(reals).mean() + 10 * gradient_penalty(C, reals, fakes, eps)
    loss.backward()
    out = {}
    for tag, net in (("D", D), ("G", G), ("C", C)):
        for name, p in net.named_parameters():
            out[f"{tag}.{name}.grad"] = p.grad
        for name, b in net.named_buffers():
            out[f"{tag}.{name}"] = b
    return out


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    D, G, C = networks()
    for net in (D, G, C):
        distributed.convert_batchnorm(net)
    reals, z, eps = (t[rank::world] for t in fixed_batch())
    result = gradients(reals, z, eps, D, G, C)
    distributed.average_gradients(p for net in (D, G, C) for p in net.parameters())
    result.update({f"{k}.averaged": v for k, v in gradients_of(D, G, C).items()})
    agree_before = distributed.ranks_disagreeing([D, G, C])
    if rank == 1:
        with torch.no_grad():
            next(C.parameters()).add_(1e-3)
    result["agree_before"] = agree_before
    result["agree_after"] = distributed.ranks_disagreeing([D, G, C])
    result["gathered"] = distributed.gather_objects(("rank", rank))
    torch.save(result, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def gradients_of(*nets) -> dict[str, torch.Tensor]:
    return {f"{tag}.{name}.grad": p.grad for tag, net in zip("DGC", nets)
            for name, p in net.named_parameters()}


if __name__ == "__main__":
    main(Path(sys.argv[1]))
