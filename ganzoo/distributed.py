"""Data-parallel training on torch.distributed (launched by torchrun or ``ganzoo train --gpus``).

Every rank holds the whole model and trains on its own share of each global minibatch; the
gradients are averaged over the ranks before every optimiser step, so all ranks keep equal
weights and the update equals the single-process one on the global batch. How:

* :class:`GradientAverager` hangs a step pre-hook on each of the architecture's optimisers that
  all-reduces the gradients in one flat buffer. This is what DistributedDataParallel computes,
  done at the one point every GAN step passes through. DDP itself does not fit GAN steps: they
  run D several times before one backward (reals, fakes, the penalty's double backward), DDP's
  documentation says it does not work with ``torch.autograd.grad``, and architectures would
  have to wrap each network themselves.
* BatchNorm layers become :class:`SyncBatchNorm` (statistics over the global batch, as a single
  process computes them); torch's own SyncBatchNorm runs on GPUs only, so this one reduces
  sums through a differentiable all-reduce that works on gloo too.
* Plugins that keep statistics of their own (ADA's r_t, the path-length mean) reduce them with
  :func:`all_reduce_mean`, which is the identity in a single process.

Backend: nccl on CUDA, gloo on CPU. Only rank 0 writes to the run directory (the trainer).
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import re
import sys
import uuid
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ganzoo.errors import GanzooError

# Rank 0 alone draws sample grids and computes metrics while the others wait in their next
# collective: give that an hour, not gloo's default 30 minutes.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=60)


@dataclass(frozen=True)
class Rank:
    """Where this process stands in the job (torchrun's RANK, LOCAL_RANK, WORLD_SIZE)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls) -> "Rank":
        try:
            return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                       int(os.environ.get("WORLD_SIZE", 1)))
        except ValueError as e:
            raise GanzooError(f"RANK/LOCAL_RANK/WORLD_SIZE must be integers ({e})") from None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def start(rank: Rank, device: torch.device) -> torch.device:
    """Join the process group (a no-op for one process); returns this rank's device (GPU number
    LOCAL_RANK on CUDA)."""
    if not rank.distributed:
        return device
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", rank.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT,
                                    **_restart_safe_store(rank))
        except (RuntimeError, ValueError) as e:
            raise GanzooError(f"rank {rank.rank}: could not join the {backend} process group "
                              f"({first_line(e)})") from None
    return device


def _restart_safe_store(rank: Rank) -> dict:
    """Under torchrun, the workers meet in the agent's key-value store, which outlives a
    restart (--max-restarts) together with the previous attempt's keys: a restarted rank could
    read a dead process's address and fail to connect ("Connection refused", seen in about
    half of our restart tests). Keys under a prefix per attempt avoid that."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return {}
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                          rank.world_size, is_master=False, timeout=COLLECTIVE_TIMEOUT)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return {"store": dist.PrefixStore(f"ganzoo/attempt-{attempt}", store),
            "rank": rank.rank, "world_size": rank.world_size}


def stop(wait: bool = False) -> None:
    """Leave the process group (idempotent). ``wait``: first wait until every rank got here
    (the end of a job that went well), so no rank tears down its connections while another
    still talks on them: that can abort a process in gloo's threads."""
    if not dist.is_initialized():
        return
    if wait:
        dist.barrier()
    dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def first_line(e: BaseException) -> str:
    """The gist of an error: its first line, less gloo's "[path/pair.cc:537] " prefix and
    its advice after the first sentence."""
    lines = str(e).strip().splitlines()
    text = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", lines[0] if lines else "")
    text = text.split(". ")[0].rstrip(".")
    return text or type(e).__name__


def all_reduce_sum_(tensor: Tensor) -> Tensor:
    """In place: the sum over ranks (identity in a single process). CPU tensors work on
    nccl too (they travel through the GPU)."""
    if not active():
        return tensor
    if dist.get_backend() == "nccl" and tensor.device.type == "cpu":
        on_gpu = tensor.cuda()
        dist.all_reduce(on_gpu)
        return tensor.copy_(on_gpu)
    dist.all_reduce(tensor)
    return tensor


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """The mean over ranks of a (detached) tensor; the identity in a single process."""
    if not active():
        return tensor
    return all_reduce_sum_(tensor.detach().clone()) / dist.get_world_size()


def rank() -> int:
    return dist.get_rank() if active() else 0


def gather_objects(obj) -> list | None:
    """Every rank's ``obj`` (picklable), in rank order, on rank 0; None on the others.
    A single process gets ``[obj]``."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank."""
    if not active():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def rank_seed(seed: int, rank: int, images: int) -> int:
    """Each rank's RNG seed: from the run seed, the rank and the images trained so far, so
    ranks draw different latents and a resumed job draws fresh ones."""
    return (seed * 1_000_003 + rank * 7_919 + images) % (2 ** 63)


# -- gradients ----------------------------------------------------------------------------------

def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over the ranks, in one all-reduce.

    A parameter without a gradient on every rank keeps none (Adam then skips it, as in one
    process); one that has a gradient on some ranks only gets the mean with zeros elsewhere.
    """
    params = list(params)
    if not active() or not params:
        return
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.float32,
                           device=params[0].device)
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten().float()
                      for p in params] + [present])
    dist.all_reduce(flat)
    flat[:-len(params)] /= dist.get_world_size()
    offset = 0
    for p, count in zip(params, flat[-len(params):].tolist()):
        size = p.numel()
        if count > 0:
            p.grad = flat[offset:offset + size].view_as(p).to(p.dtype)
        offset += size


class GradientAverager:
    """Averages gradients over the ranks before each step of the given optimisers."""

    def __init__(self, optimizers: Iterable[torch.optim.Optimizer]):
        self.handles = [opt.register_step_pre_hook(self._before_step) for opt in optimizers]

    @staticmethod
    def _before_step(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        average_gradients(p for group in optimizer.param_groups for p in group["params"])

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def broadcast_module_states(modules: Iterable[nn.Module]) -> None:
    """Give every rank rank 0's parameters and buffers (a fresh or resumed model starts
    equal everywhere even if construction drew different numbers)."""
    if not active():
        return
    with torch.no_grad():
        for module in modules:
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)


def ranks_disagreeing(modules: Iterable[nn.Module]) -> list[int]:
    """Ranks whose parameters differ from rank 0's (compared through per-tensor float64 sums,
    which equal tensors give bit for bit); [] in a single process. Buffers may differ by
    design (running estimates such as StyleGAN2's w average are rank-local, as published)."""
    if not active():
        return []
    params = [p for m in modules for p in m.parameters()]
    sums = torch.stack([p.detach().double().sum() for p in params]) if params else \
        torch.zeros(1, dtype=torch.float64)
    everyone = [torch.empty_like(sums) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, sums)
    return [r for r, other in enumerate(everyone) if not torch.equal(other, everyone[0])]


# -- BatchNorm over the global batch -------------------------------------------------------------

class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) with a gradient: d(sum over ranks)/dx_r sums the upstream gradients."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch (all ranks); in eval
    mode, or in a single process, it is plain BatchNorm. Works on CPU (gloo) and GPU."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and active()):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        channels = x.shape[1]
        local = torch.cat([x.sum(dims), (x * x).sum(dims),
                           x.new_tensor([x.numel() / channels])])
        total = _SumOverRanks.apply(local)
        count = total[-1]
        mean = total[:channels] / count
        var = (total[channels:2 * channels] / count - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else \
                    1.0 / float(self.num_batches_tracked)
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_batchnorm(module: nn.Module) -> int:
    """Swap every BatchNorm inside ``module`` for :class:`SyncBatchNorm`, in place, sharing the
    parameters and buffers (optimisers keep working); returns how many were swapped."""
    swapped = 0
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and \
                not isinstance(child, SyncBatchNorm):
            sync = SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                 child.track_running_stats)
            if child.affine:
                sync.weight, sync.bias = child.weight, child.bias
            if child.track_running_stats:
                sync.running_mean, sync.running_var = child.running_mean, child.running_var
                sync.num_batches_tracked = child.num_batches_tracked
            sync.train(child.training)
            setattr(module, name, sync)
            swapped += 1
        else:
            swapped += convert_batchnorm(child)
    return swapped


# -- launching and restarts -------------------------------------------------------------------

def restarted_by_torchrun() -> bool:
    """Whether torchrun restarted this job's workers (--max-restarts) after a failure."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0


def job_id() -> str | None:
    """Names this torchrun job across its restarts (None outside torchrun): the rendezvous
    id, or, where torchrun leaves it at "none", the agent process that outlives restarts."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return None
    run_id = os.environ["TORCHELASTIC_RUN_ID"]
    return run_id if run_id and run_id != "none" else f"agent-{os.uname().nodename}-{os.getppid()}"


def elastic_run(out) -> str | None:
    """The run this torchrun job trained before it was restarted, if it saved a checkpoint
    (the run's config.json records the job id): the restarted workers resume it."""
    from ganzoo.checkpoint import checkpoints_of, list_runs
    job = job_id()
    for run in reversed(list_runs(out)):
        try:
            recorded = json.loads((run / "config.json").read_text()).get("job")
        except (OSError, ValueError):
            continue
        if job is not None and recorded == job and checkpoints_of(run):
            return str(run)
    return None


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``python -m ganzoo ARGV`` in ``nproc`` processes on this machine through
    torch.distributed's elastic launcher (torchrun --standalone); a failed rank becomes one
    line naming it."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # ours: one line
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc,
                          run_id=str(uuid.uuid4()), rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0)
    try:
        elastic_launch(config, sys.executable)("-m", "ganzoo", *argv)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        if failure.exitcode in STOPPED_EXIT_CODES:
            return failure.exitcode           # a stop signal: rank 0 said where it saved
        how = f"was killed by {failure.signal_name()}" if failure.exitcode < 0 \
            else f"exited with code {failure.exitcode}"
        raise GanzooError(f"rank {rank} (pid {failure.pid}) {how}; the job stopped "
                          "(the last checkpoint is intact: continue with --resume)") from None
    return 0


# What a rank exits with after a stop signal made it save (ganzoo/cli/train.py: 128 + signal).
STOPPED_EXIT_CODES = (128 + 2, 128 + 15)
