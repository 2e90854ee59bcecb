"""Where ganzoo keeps downloads and prepared data: $GANZOO_HOME, default ~/.cache/ganzoo."""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from ganzoo.atomic import FULL, atomic_write
from ganzoo.data.source import ImageSet
from ganzoo.errors import DiskFull


def ganzoo_home() -> Path:
    return Path(os.environ.get("GANZOO_HOME") or Path.home() / ".cache" / "ganzoo")


def cache_key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def load_prepared(key: str) -> ImageSet | None:
    path = ganzoo_home() / "prepared" / f"{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            labels = z["labels"] if "labels" in z.files else None
            return ImageSet(str(z["name"]), z["images"], labels,
                            tuple(str(c) for c in z["class_names"]))
    except Exception:  # noqa: BLE001 - an unreadable cache entry is rebuilt, not fatal
        return None


def save_prepared(key: str, data: ImageSet) -> None:
    """Cache prepared images. The cache only saves time: when it cannot be written (a full
    disk, a read-only $GANZOO_HOME) training goes on from memory, after one warning line."""
    path = ganzoo_home() / "prepared" / f"{key}.npz"
    arrays = {"name": np.array(data.name), "images": data.images,
              "class_names": np.array(data.class_names, dtype=str)}
    if data.labels is not None:
        arrays["labels"] = data.labels
    try:
        with atomic_write(path) as f:
            np.savez(f, **arrays)
    except (OSError, DiskFull) as e:
        full = isinstance(e, DiskFull) or getattr(e, "errno", None) in FULL
        reason = "no space left on device" if full else (getattr(e, "strerror", None) or e)
        print(f"warning: prepared data not cached in {path.parent} ({reason}); going on from "
              "memory (set GANZOO_HOME to a folder with room to cache it)", file=sys.stderr)
