"""The progress line: kimg, sec/kimg, losses and ETA, redrawn in place on a terminal."""
from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class ProgressLine:
    """Draws at most a few times a second; on a non-terminal it prints one line per tick."""

    def __init__(self, total_kimg: float, stream: TextIO | None = None, quiet: bool = False,
                 min_interval: float = 0.25):
        self.total_kimg = total_kimg
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = not quiet and self.stream.isatty()
        self.min_interval = min_interval
        self._last_draw = 0.0

    def _text(self, kimg: float, sec_per_kimg: float | None, losses: dict[str, float]) -> str:
        parts = [f"kimg {kimg:8.3f}/{self.total_kimg:g}"]
        if sec_per_kimg:
            eta = (self.total_kimg - kimg) * sec_per_kimg
            parts += [f"{sec_per_kimg:7.2f} sec/kimg", f"ETA {format_duration(eta)}"]
        parts += [f"{k} {v:7.4f}" for k, v in losses.items()]
        return "  ".join(parts)

    def update(self, kimg: float, sec_per_kimg: float | None, losses: dict[str, float]) -> None:
        """Redraw the live line (rate-limited); nothing when not on a terminal."""
        now = time.monotonic()
        if not self.live or now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        self.stream.write("\r\033[K" + self._text(kimg, sec_per_kimg, losses))
        self.stream.flush()

    def tick(self, kimg: float, sec_per_kimg: float | None, losses: dict[str, float]) -> None:
        """A permanent line at the end of each tick."""
        if self.quiet:
            return
        prefix = "\r\033[K" if self.live else ""
        self.stream.write(prefix + self._text(kimg, sec_per_kimg, losses) + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(("\r\033[K" if self.live else "") + text + "\n")
            self.stream.flush()


class ProgressBar:
    """``label [#####.....] 12/40  3s left`` on stderr, redrawn in place on a terminal at most
    a few times a second; nothing at all when the stream is not a terminal (logs, tests)."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None,
                 width: int = 30, min_interval: float = 0.2):
        self.label, self.total, self.width = label, max(1, total), width
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.min_interval = min_interval
        self.done = 0
        self._start = self._last_draw = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.live and (now - self._last_draw >= self.min_interval or
                          self.done >= self.total):
            self._last_draw = now
            filled = self.width * min(self.done, self.total) // self.total
            left = (now - self._start) / self.done * (self.total - self.done)
            self.stream.write(f"\r\033[K{self.label} [{'#' * filled}{'.' * (self.width - filled)}]"
                              f" {self.done}/{self.total}  {format_duration(left)} left")
            self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
