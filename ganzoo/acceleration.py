"""``--compile`` and ``--cuda-graphs``: a faster training step for architectures that opt in.

A StyleGAN2 step on a fast GPU is host-bound: thousands of small kernels, each launched by a
Python-level op, keep the GPU waiting (benchmarks/RESULTS.md). Two remedies, each optional:

- ``--compile``: the networks' forward passes (and so their backward) go through
  ``torch.compile`` (inductor), which fuses the elementwise work into fewer, larger kernels.
  Passes that need double backward (R1, the path-length penalty, WGAN-GP's penalty) stay
  eager: compiled graphs do not support it. Inductor is told to draw random numbers as eager
  does (``fallback_random``), so a compiled run consumes the same random stream.
- ``--cuda-graphs``: each phase of the step (forward, backward and optimiser step) is captured
  once as a CUDA graph and then replayed: one launch instead of thousands. It needs a CUDA
  device, one process, static shapes, and no host reads inside a phase.

An architecture lists what it supports in ``Architecture.accelerations`` and does the work in
``Architecture.accelerate``; the trainer refuses anything else with one line saying why.
"""
from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import torch

from ganzoo.errors import GanzooError

COMPILE, CUDA_GRAPHS = "compile", "cuda_graphs"
FLAGS = {COMPILE: "--compile", CUDA_GRAPHS: "--cuda-graphs"}


@dataclass(frozen=True)
class Acceleration:
    """What the trainer asks an architecture for (from ``--compile`` / ``--cuda-graphs``)."""

    compile: bool = False
    cuda_graphs: bool = False

    @property
    def requested(self) -> list[str]:
        return [name for name in (COMPILE, CUDA_GRAPHS) if getattr(self, name)]

    def __bool__(self) -> bool:
        return bool(self.requested)


def unavailable_reason(acceleration: Acceleration, arch_name: str, supported: frozenset[str],
                       device: torch.device, world_size: int) -> str | None:
    """Why this run cannot have what ``acceleration`` asks for, in one line; None if it can."""
    for name in acceleration.requested:
        if name not in supported:
            return f"{FLAGS[name]}: {arch_name} does not support it"
    if acceleration.cuda_graphs:
        if device.type != "cuda":
            return f"--cuda-graphs needs a CUDA device; this run is on {device.type} " \
                   f"(use --device cuda)"
        if world_size > 1:
            return f"--cuda-graphs runs in one process; this job has {world_size} (a captured " \
                   f"step cannot hold the gradient all-reduce)"
    if acceleration.compile:
        return compiler_unavailable(device)
    return None


def compiler_unavailable(device: torch.device) -> str | None:
    """Why torch.compile cannot build kernels for ``device`` here, or None."""
    if not torch._dynamo.is_dynamo_supported():
        return "--compile: torch.compile does not support this Python version"
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        return "--compile on CUDA needs triton (pip install triton)"
    if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return "--compile on CPU needs a C++ compiler (g++ or clang++) on the PATH"
    return None


def compile_module(module: torch.nn.Module) -> Callable[..., Any]:
    """``module`` compiled for training; parameters and state dict stay the module's own.

    Shapes are static in training (one minibatch size per phase), so no dynamic shapes; random
    ops inside compiled code fall back to eager's generator so the stream does not change."""
    import torch._inductor.config as inductor_config
    inductor_config.fallback_random = True
    return _OneLineErrors(torch.compile(module, dynamic=False), "--compile",
                          torch._dynamo.exc.TorchDynamoException)


class _OneLineErrors:
    """Calls ``fn``; an exception of ``kinds`` (torch.compile failing to trace or to build,
    a capture refused) becomes one GanzooError line naming the flag to drop."""

    def __init__(self, fn: Callable[..., Any], flag: str, kinds: type[BaseException]):
        self.fn, self.flag, self.kinds = fn, flag, kinds

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.fn(*args, **kwargs)
        except self.kinds as e:
            raise GanzooError(_failure_line(self.flag, e)) from e


def _failure_line(flag: str, error: BaseException, doing: str = "") -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = lines[0] if lines else type(error).__name__
    return f"{flag} failed{doing}: {first} (train without {flag})"


def set_capturable(opt: torch.optim.Optimizer, capturable: bool) -> None:
    """Make ``opt`` (Adam-like) steppable inside a CUDA graph, or not: with capturable set,
    its step counts live on the parameters' device (the update reads no host value)."""
    # Each phase's first run is eager by design (PhaseGraphs' warm-up): torch's warning that
    # a capturable optimiser stepped outside a capture is not news to the user.
    opt._warned_capturable_if_run_uncaptured = capturable
    for group in opt.param_groups:
        if "capturable" not in group or group["capturable"] == capturable:
            continue
        group["capturable"] = capturable
        for param in group["params"]:
            state = opt.state.get(param, {})
            step = state.get("step")
            if isinstance(step, torch.Tensor):
                keep_on_device = capturable or group.get("fused")
                state["step"] = step.to(param.device if keep_on_device else "cpu")


class PhaseGraphs:
    """Each phase of a training step captured once as a CUDA graph, then replayed.

    ``run(key, phase)`` calls ``phase()`` eagerly (on a side stream, as capture requires) for
    its first ``warmup`` calls per key: cuDNN picks its algorithms, compiled code compiles and
    the allocator settles. The next call captures it and replays the capture; every later call
    only replays. ``phase`` must read its inputs from tensors that stay in place (see
    :meth:`static`) and return tensors, which the replays overwrite: read them before the next
    call with the same key. All graphs share one memory pool.
    """

    def __init__(self, warmup: int = 1):
        self.warmup = warmup
        self.pool = torch.cuda.graph_pool_handle()
        self.graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, Any]] = {}
        self.calls: Counter = Counter()
        self.buffers: dict[str, torch.Tensor] = {}

    def static(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """A tensor that keeps its address from call to call, holding ``value`` now. (A new
        shape or dtype, which training never gives, means new buffers: every graph is
        captured again.)"""
        buffer = self.buffers.get(name)
        if buffer is None or buffer.shape != value.shape or buffer.dtype != value.dtype:
            buffer = self.buffers[name] = torch.empty_like(value)
            self.graphs.clear()
        buffer.copy_(value)
        return buffer

    def run(self, key: Hashable, phase: Callable[[], Any]) -> Any:
        captured = self.graphs.get(key)
        if captured is not None:
            graph, outputs = captured
            graph.replay()
            return outputs
        self.calls[key] += 1
        current = torch.cuda.current_stream()
        side = torch.cuda.Stream()
        side.wait_stream(current)
        if self.calls[key] <= self.warmup:
            with torch.cuda.stream(side):
                outputs = phase()
            current.wait_stream(side)
            return outputs
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=self.pool, stream=side):
                outputs = phase()
        except RuntimeError as e:     # an op that reads a host value or syncs, say
            phase_name = key[0] if isinstance(key, tuple) else key
            raise GanzooError(_failure_line("--cuda-graphs", e, f" capturing phase {phase_name}")
                              ) from e
        current.wait_stream(side)
        self.graphs[key] = (graph, outputs)
        graph.replay()
        return outputs

