"""What a run writes into its directory, besides checkpoints: config.json, stats.jsonl,
network.txt and the sample grids (samples/reals.png, samples/fakesKKKKKK.KKK.png, final.png).

A resumed run must end as if it was never interrupted: lines and grids written after the
checkpoint it resumes from are dropped, and will be written again.
"""
from __future__ import annotations

import json
from pathlib import Path

from ganzoo.atomic import FULL, atomic_write_text, disk_full_message
from ganzoo.checkpoint import checkpoints_of, remove_stale_temp_files
from ganzoo.errors import DiskFull
from ganzoo.viz import save_image

SAMPLES = "samples"
STATS = "stats.jsonl"


class RunDirectory:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.samples = self.path / SAMPLES

    def prepare(self, config: dict) -> None:
        """Create the folders, drop temp files of killed writers, (re)write config.json."""
        self.samples.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(self.path)
        atomic_write_text(self.path / "config.json", json.dumps(config, indent=2) + "\n")

    def rewind(self, kimg: float) -> None:
        """Forget what was written after ``kimg``: stats lines and sample grids."""
        self._truncate_stats(kimg)
        for grid in self.grids():
            if grid_kimg(grid) > kimg + 1e-9:
                grid.unlink()

    def grids(self) -> list[Path]:
        """The sample grids written so far, oldest first."""
        return sorted(p for p in self.samples.glob("fakes*.png") if grid_kimg(p) >= 0)

    def save_reals(self, img) -> None:
        save_image(img, self.samples / "reals.png")

    def save_grid(self, img, kimg: float, final: bool) -> None:
        save_image(img, self.samples / f"fakes{kimg:010.3f}.png")
        if final:
            save_image(img, self.path / "final.png")

    def write_network_summary(self, text: str) -> None:
        atomic_write_text(self.path / "network.txt", text.rstrip("\n") + "\n")

    def append_stats(self, record: dict) -> None:
        append_line(self.path / STATS, json.dumps(record))

    def last_checkpoint_text(self) -> str:
        """Where a failed run can continue from, for its error line."""
        last = checkpoints_of(self.path)
        return f"last good checkpoint: {last[-1]}" if last else "no checkpoint yet"

    def _truncate_stats(self, kimg: float) -> None:
        path = self.path / STATS
        if not path.exists():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["kimg"] <= kimg + 1e-9:
                    keep.append(line)
            except (ValueError, KeyError):
                pass  # a half-written last line from a killed process
        atomic_write_text(path, "".join(line + "\n" for line in keep))


def grid_kimg(path: Path) -> float:
    """kimg of a ``fakesKKKKKK.KKK.png`` grid; -1 for another name."""
    try:
        return float(path.stem.removeprefix("fakes"))
    except ValueError:
        return -1.0


def append_line(path: Path, line: str) -> None:
    """Append one line; a full disk is one error line naming the file."""
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except OSError as e:
        if e.errno in FULL:
            raise DiskFull(disk_full_message(path)) from None
        raise
