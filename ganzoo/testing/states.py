"""Comparing two state dicts entry by entry, so a failed comparison names what differs."""
from __future__ import annotations

import io
import pickle
from typing import Any

import torch


def leaves(state: Any, prefix: str = "") -> dict[str, Any]:
    """Every tensor and plain value in a nested state, keyed by dotted path."""
    if isinstance(state, dict):
        out: dict[str, Any] = {}
        for k, v in state.items():
            out.update(leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(state, (list, tuple)):
        out = {}
        for i, v in enumerate(state):
            out.update(leaves(v, f"{prefix}.{i}"))
        return out
    return {prefix: state}


def differences(a: Any, b: Any, limit: int = 8) -> list[str]:
    """Paths where two states differ (missing, another shape, other values), at most
    ``limit`` of them; [] when they are equal, bit for bit."""
    la, lb = leaves(a), leaves(b)
    found = [f"{k}: only in the first" for k in la.keys() - lb.keys()]
    found += [f"{k}: only in the second" for k in lb.keys() - la.keys()]
    for k in sorted(la.keys() & lb.keys()):
        x, y = la[k], lb[k]
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.shape != y.shape or x.dtype != y.dtype:
                found.append(f"{k}: {x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}")
            elif not torch.equal(x.cpu(), y.cpu()):
                diff = (x.float().cpu() - y.float().cpu()).abs().max().item()
                found.append(f"{k}: values differ (max |diff| {diff:.3g})")
        elif isinstance(x, torch.Tensor) != isinstance(y, torch.Tensor) or x != y:
            found.append(f"{k}: {x!r} vs {y!r}")
    return sorted(found)[:limit]


def weights_only_round_trip(state: Any) -> Any:
    """``state`` through ``torch.save`` and ``torch.load(weights_only=True)``, as a checkpoint
    goes; AssertionError naming the refused object when it holds more than plain data."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    try:
        return torch.load(buffer, weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [line for line in str(e).splitlines() if "GLOBAL" in line or "Unsupported" in line]
        raise AssertionError(
            "state_dict() holds objects that torch.load(weights_only=True) refuses, so its "
            "checkpoints would need --trust: keep to tensors, numbers, strings, lists and "
            f"dicts ({(lines or [str(e).splitlines()[0]])[0].strip()})") from None
