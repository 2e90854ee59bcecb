"""Values several commands parse the same way: --seeds (generate, the explore commands,
experiment small-data) and --class (generate, the explore commands, project), and the limits
on how much one call may ask for."""
from __future__ import annotations

import collections.abc
import itertools

from ganzoo.architecture import Architecture
from ganzoo.errors import GanzooError
from ganzoo.trainer import SEED_LIMIT

# Seeds per call: 0-1000000 is fine (images are written as they are made, the seeds kept as
# ranges); a range longer than this is taken for a typo (it would run for days).
MAX_SEEDS = 10_000_000
# Images one --grid may hold: 32x32 of them is already 8192 px wide at 256 px.
MAX_GRID_IMAGES = 1024


class Seeds(collections.abc.Sequence):
    """The seeds --seeds names, kept as ranges: 0-1000000 takes no memory."""

    def __init__(self, ranges: list[range]):
        self.ranges = ranges

    def __len__(self) -> int:
        return sum(len(r) for r in self.ranges)

    def __iter__(self):
        return itertools.chain.from_iterable(self.ranges)

    def __getitem__(self, index: int) -> int:
        for r in self.ranges:
            if index < len(r):
                return r[index]
            index -= len(r)
        raise IndexError(index)

    def __eq__(self, other) -> bool:
        return isinstance(other, collections.abc.Sequence) and list(self) == list(other)


def parse_seeds(text: str) -> Seeds:
    """'0-3,7' -> the seeds 0, 1, 2, 3, 7."""
    try:
        ranges = [seed_range(part.strip()) for part in text.split(",")]
    except ValueError:
        raise GanzooError(f"--seeds {text!r}: expected numbers and ranges like 0-15,20")
    if any(r.start < 0 or r.stop > SEED_LIMIT for r in ranges):
        raise GanzooError(f"--seeds {text!r}: seeds must be in 0-{SEED_LIMIT - 1}")
    seeds = Seeds(ranges)
    if len(seeds) > MAX_SEEDS:
        raise GanzooError(f"--seeds {text!r}: {len(seeds)} seeds; at most {MAX_SEEDS:,} per "
                          "call")
    return seeds


def seed_range(part: str) -> range:
    """'3-7' or '5'; ValueError for anything else. A negative seed ('-5') parses here, so
    parse_seeds can refuse it in its own words."""
    if "-" not in part[1:]:
        return range(int(part), int(part) + 1)
    lo, hi = part.split("-", 1) if not part.startswith("-") else (part, "")
    lo_i, hi_i = int(lo), int(hi)
    if hi_i < lo_i:
        raise ValueError
    return range(lo_i, hi_i + 1)


def require_conditional(model: Architecture, where: str) -> None:
    if not model.conditional:
        raise GanzooError(f"--class: {model.name} ({where}) is unconditional; "
                          f"{model.unconditional_hint}")


def parse_class(text: str, model: Architecture, where: str) -> int:
    """A class index or name -> index; anything else names the valid classes."""
    require_conditional(model, where)
    names = model.data.class_names
    valid = ", ".join(f"{i}={n}" for i, n in enumerate(names)) or \
        f"0-{model.data.num_classes - 1}"
    if text in names:
        return names.index(text)
    try:
        k = int(text)
    except ValueError:
        k = -1
    if not 0 <= k < model.data.num_classes:
        raise GanzooError(f"--class {text}: no such class; valid classes: {valid}")
    return k
