"""A per-layer table of a network: parameters, buffers, output shape and dtype of every
submodule, recorded with forward hooks during one forward pass.

Rows come in the order the submodules finish their forward (children before their parent).
Only modules nested at most ``max_depth`` levels below the root get rows; a row counts the
parameters and buffers of its module and of the descendants too deep for a row of their own
(so a modulated conv's style affine is part of the conv's row), never a child's that has a
row, and each tensor once. A module returning a tuple gets one row per tensor output (``name:0``,
``name:1``, ...; its parameters and buffers on the first). A module with no parameters or
buffers of its own whose outputs are all tensors an earlier row already showed (a container
passing its last child's output through) adds nothing and is left out, as is the root.
This is the layout of the StyleGAN2-ADA layer table (Appendix B of ../shared/seeds/001_*.txt).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class SummaryRow:
    name: str
    params: int
    buffers: int
    shape: tuple[int, ...] | None
    dtype: torch.dtype | None


@dataclass
class NetworkSummary:
    title: str
    rows: list[SummaryRow] = field(default_factory=list)

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_buffers(self) -> int:
        return sum(r.buffers for r in self.rows)

    def row(self, name: str) -> SummaryRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def format(self) -> str:
        """The table as aligned text: a header, ``---`` rules, one line per row, totals.
        Zero counts print as ``-``."""
        def count(n: int) -> str:
            return str(n) if n else "-"

        header = [self.title, "Parameters", "Buffers", "Output shape", "Datatype"]
        rule = ["---"] * len(header)
        body = [[r.name, count(r.params), count(r.buffers),
                 "-" if r.shape is None else str(list(r.shape)),
                 "-" if r.dtype is None else str(r.dtype).removeprefix("torch.")]
                for r in self.rows]
        total = ["Total", count(self.total_params), count(self.total_buffers), "-", "-"]
        lines = [header, rule, *body, rule, total]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                         for line in lines)


def _tensors(output: object) -> list[Tensor]:
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for t in output if isinstance(t, Tensor)]
    return []


def network_summary(module: nn.Module, *inputs: object, title: str | None = None,
                    max_depth: int = 3, **kwargs: object) -> NetworkSummary:
    """Run ``module(*inputs, **kwargs)`` once under no_grad and tabulate its submodules.

    ``title`` heads the first column (default: the module's class name); ``max_depth`` is the
    deepest nesting that gets its own rows (3: ``synthesis.b4.conv1``, not its ``.affine``).
    """
    calls: list[tuple[str, nn.Module, list[Tensor], bool]] = []
    names = {m: name for name, m in module.named_modules()
             if m is not module and name.count(".") < max_depth}

    def record(mod: nn.Module, args: object, output: object) -> None:
        calls.append((names[mod], mod, _tensors(output), isinstance(output, (tuple, list))))

    handles = [m.register_forward_hook(record) for m in names]
    try:
        with torch.no_grad():
            module(*inputs, **kwargs)
    finally:
        for h in handles:
            h.remove()

    summary = NetworkSummary(title or type(module).__name__)
    seen_tensors: set[int] = set()  # ids stay unique: `calls` keeps every output alive
    seen_state: set[int] = set()
    for name, mod, outputs, is_tuple in calls:
        # Children finish first, so whatever of the subtree is unseen has no row of its own.
        params = [p for p in mod.parameters() if id(p) not in seen_state]
        buffers = [b for b in mod.buffers() if id(b) not in seen_state]
        new_outputs = [t for t in outputs if id(t) not in seen_tensors]
        seen_state.update(id(t) for t in params + buffers)
        seen_tensors.update(id(t) for t in outputs)
        if not params and not buffers and not new_outputs:
            continue
        n_params = sum(p.numel() for p in params)
        n_buffers = sum(b.numel() for b in buffers)
        if not outputs:
            summary.rows.append(SummaryRow(name, n_params, n_buffers, None, None))
        for i, t in enumerate(outputs):
            row_name = f"{name}:{i}" if is_tuple else name
            summary.rows.append(SummaryRow(row_name, n_params if i == 0 else 0,
                                           n_buffers if i == 0 else 0, tuple(t.shape), t.dtype))
    return summary
