"""Downloads: streamed into $GANZOO_HOME/downloads, resumed with HTTP Range, verified.

Every URL goes through :func:`mirrored` (``GANZOO_MIRROR``), so mirrors, air-gapped sites and
tests serve the same paths from another origin. A file that cannot be fetched gives one line
naming the URL and the path where the user may put it by hand; a file found there (and
verified) is used without touching the network.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import requests
import urllib3

from ganzoo.data.cache import ganzoo_home
from ganzoo.errors import GanzooError

CHUNK = 1 << 20
TIMEOUT = (15, 60)   # seconds to connect, seconds of silence while reading
# The wait before each reconnect after a dropped connection; its length is how many
# reconnects in a row (without any bytes in between) we try before giving up.
RETRY_WAITS = (0.2, 1.0, 3.0, 5.0, 10.0)
# What a dropped or stalled connection looks like while reading a response body.
_DROPPED = (requests.RequestException, urllib3.exceptions.HTTPError,
            http.client.HTTPException, OSError)


def downloads_dir() -> Path:
    return ganzoo_home() / "downloads"


def mirrored(url: str) -> str:
    """``url`` with its scheme and host replaced by ``$GANZOO_MIRROR`` (path kept)."""
    mirror = os.environ.get("GANZOO_MIRROR", "").strip()
    if not mirror:
        return url
    parts = urlsplit(url)
    return mirror.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


class Unavailable(Exception):
    """The server could not be reached, or refused the file; args[0] says why."""


class _RangeNotSatisfiable(Exception):
    """HTTP 416: the bytes we already hold are the whole file, or are not this file."""

    def __init__(self, total: int | None):
        super().__init__(total)
        self.total = total


def unavailable_message(url: str, reason: object, manual_path: Path | None) -> str:
    where = f"; download it by hand and put it at {manual_path}" if manual_path else ""
    return f"cannot download {url} ({reason}){where}"


def _reason(e: Exception) -> str:
    """A short reason for a failed connection ('Connection refused'), not urllib3's essay."""
    if isinstance(e, requests.Timeout):
        return "timed out"
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(e))
    return m.group(1).strip() if m else type(e).__name__


class HttpStream:
    """``url`` read as one byte stream from ``offset`` on. A dropped connection is reopened
    with ``Range: bytes=POS-`` at the current position, so the reader never notices; only
    when :data:`RETRY_WAITS` reconnects in a row bring no bytes is it a GanzooError."""

    def __init__(self, url: str, offset: int = 0):
        self.url = url
        self.pos = offset
        self.total: int | None = None     # size of the whole file, when the server says
        self.ignored_range = False        # the server answered a Range request with 200
        self._skip = 0                    # bytes to drop because the server ignored Range
        self._resp: requests.Response | None = self._open()

    def __enter__(self) -> HttpStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()

    def _open(self) -> requests.Response:
        # identity: a server must not gzip the body, or byte offsets would not be file offsets
        headers = {"Accept-Encoding": "identity"}
        if self.pos:
            headers["Range"] = f"bytes={self.pos}-"
        try:
            resp = requests.get(self.url, headers=headers, stream=True, timeout=TIMEOUT)
        except requests.RequestException as e:
            raise Unavailable(_reason(e)) from None
        if resp.status_code == 416:
            resp.close()
            total = re.search(r"/(\d+)", resp.headers.get("Content-Range", ""))
            raise _RangeNotSatisfiable(int(total.group(1)) if total else None)
        if resp.status_code >= 400:
            resp.close()
            raise Unavailable(f"HTTP {resp.status_code} {resp.reason or ''}".strip())
        self._take_response(resp)
        return resp

    def _take_response(self, resp: requests.Response) -> None:
        length = resp.headers.get("Content-Length")
        if resp.status_code == 206:
            m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != self.pos:
                resp.close()
                raise Unavailable(f"server answered a resume at byte {self.pos} with "
                                  f"{resp.headers.get('Content-Range')!r}")
            self.total = None if m.group(2) == "*" else int(m.group(2))
            return
        self.total = int(length) if length and length.isdigit() else None
        if self.pos:                      # 200 to a Range request: the body starts at zero
            self.ignored_range = True
            self._skip = self.pos

    def restart_from_zero(self) -> None:
        """After ``ignored_range``: take the body from byte 0 instead of skipping to pos."""
        self.pos, self._skip = 0, 0

    def read(self, n: int = CHUNK) -> bytes:
        """Up to ``n`` bytes; b"" only at the end of the file."""
        failures = 0
        while True:
            try:
                if self._resp is None:
                    self._resp = self._open()
                data = self._read_some(n)
                if data or self.total is None or self.pos >= self.total:
                    return data
                raise urllib3.exceptions.ProtocolError("connection closed early")
            except (*_DROPPED, Unavailable, _RangeNotSatisfiable) as e:
                if failures >= len(RETRY_WAITS):
                    raise GanzooError(
                        f"download of {self.url} failed at byte {self.pos}: the connection "
                        f"dropped {failures + 1} times in a row ({_reason(e)}); run the "
                        f"same command again to resume") from None
                self._drop(e)
                time.sleep(RETRY_WAITS[failures])
                failures += 1

    def _read_some(self, n: int) -> bytes:
        while self._skip:
            got = self._resp.raw.read(min(self._skip, CHUNK))
            if not got:
                raise urllib3.exceptions.ProtocolError("connection closed early")
            self._skip -= len(got)
        data = self._resp.raw.read(n)
        self.pos += len(data)
        return data

    def _drop(self, cause: Exception) -> None:
        """Forget the broken connection; the next read reopens at ``pos`` with Range."""
        print(f"connection to {urlsplit(self.url).netloc} lost at byte {self.pos} "
              f"({_reason(cause)}); resuming", file=sys.stderr)
        if self._resp is not None:
            self._resp.close()
        self._resp = None


def open_url(url: str, offset: int = 0, *, manual_path: Path | None = None) -> HttpStream:
    """An :class:`HttpStream` of the mirrored ``url``; unreachable is a one-line GanzooError."""
    url = mirrored(url)
    try:
        return HttpStream(url, offset)
    except Unavailable as e:
        raise GanzooError(unavailable_message(url, e, manual_path)) from None
    except _RangeNotSatisfiable:
        raise GanzooError(f"cannot resume {url} at byte {offset}: the server says the file "
                          f"is shorter") from None


def download_file(url: str, dest: Path, *, sha256: str | None = None, size: int | None = None,
                  desc: str | None = None, md5: str | None = None) -> Path:
    """Download ``url`` (mirrored) to ``dest`` and return ``dest``.

    A relative ``dest`` lies under ``$GANZOO_HOME/downloads``. The bytes go to
    ``dest + ".part"`` first (resumed from where an earlier attempt stopped) and are renamed
    onto ``dest`` only once verified: by sha256 when given, else md5 (the only digest some
    data sets publish), else size. A ``dest`` that already exists is verified and used as
    is, with no network: that is also where a user puts a file fetched by hand.
    """
    dest = Path(dest) if Path(dest).is_absolute() else downloads_dir() / dest
    url = mirrored(url)
    if dest.exists():
        problem = _problem(dest, sha256, md5, size)
        if problem:
            raise GanzooError(f"{dest}: {problem}; delete it (or put a good copy of {url} "
                              f"there) and run again")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _fetch(url, part, desc or dest.name, size)
    except Unavailable as e:
        raise GanzooError(unavailable_message(url, e, dest)) from None
    problem = _problem(part, sha256, md5, size)
    if problem:
        part.unlink(missing_ok=True)
        raise GanzooError(f"download of {url} failed verification: {problem}; the partial "
                          f"file was deleted, run again to retry")
    _rename(part, dest)
    return dest


def _fetch(url: str, part: Path, label: str, size: int | None) -> None:
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:     # longer than the real file: not a prefix of it
        part.unlink()
        offset = 0
    try:
        stream = HttpStream(url, offset)
    except _RangeNotSatisfiable as e:
        if offset and e.total == offset:       # the part is complete (we stopped before rename)
            return
        part.unlink(missing_ok=True)
        offset = 0
        stream = HttpStream(url, 0)
    with stream:
        if size is not None and stream.total not in (None, size):
            raise GanzooError(f"download of {url} refused: size mismatch (expected {size} "
                              f"bytes, the server says {stream.total}); nothing was written")
        with open(part, "ab") as f:
            if stream.ignored_range:
                print(f"{label}: the server does not resume downloads; restarting from zero",
                      file=sys.stderr)
                f.truncate(0)
                stream.restart_from_zero()
                offset = 0
            elif offset:
                print(f"{label}: resuming at {_size(offset)}", file=sys.stderr)
            _copy(stream, f, Progress(label, stream.total, offset), size)
    if size is not None and stream.pos > size:
        part.unlink(missing_ok=True)
        raise GanzooError(f"download of {url} stopped: the server sent more than the expected "
                          f"{size} bytes (a changed file, or not this file); the partial file "
                          "was deleted")


def _copy(stream: HttpStream, f: BinaryIO, progress: Progress, size: int | None) -> None:
    """Stream to ``f``; stop once past ``size``: a server may send anything, and without a
    stop a known 9.9 MB file took 210 MB of disk before verification failed."""
    while data := stream.read(CHUNK):
        f.write(data)
        progress.update(stream.pos)
        if size is not None and stream.pos > size:
            return
    f.flush()
    os.fsync(f.fileno())
    progress.finish(stream.pos)


def _problem(path: Path, sha256: str | None, md5: str | None, size: int | None) -> str | None:
    """Why ``path`` is not the expected file, or None when it is (or nothing is known)."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"size mismatch (expected {size} bytes, got {actual})"
    for algo, want in (("sha256", sha256), ("md5", md5)):
        if want:
            got = file_digest(path, algo)
            return None if got == want.lower() else (
                f"{algo} mismatch (expected {want.lower()}, got {got})")
    return None


def file_digest(path: Path, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _rename(part: Path, dest: Path) -> None:
    """Atomic, durable rename (the part file was fsynced): as ganzoo.atomic does it."""
    os.replace(part, dest)
    dir_fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


class Progress:
    """A progress line redrawn in place on a terminal; elsewhere only the final line
    (``draw_only``: no final line, the caller reports the outcome itself)."""

    def __init__(self, label: str, total: int | None, start: int, draw_only: bool = False):
        self.label, self.total, self.start, self.draw_only = label, total, start, draw_only
        self.live = sys.stderr.isatty()
        self.t0 = self.last = time.monotonic()

    def update(self, pos: int, note: str = "") -> None:
        now = time.monotonic()
        if not self.live or now - self.last < 0.25:
            return
        self.last = now
        rate = (pos - self.start) / max(now - self.t0, 1e-6)
        of = f" of {_size(self.total)} ({100 * pos / self.total:.0f}%)" if self.total else ""
        note = f"{note}, " if note else ""
        sys.stderr.write(f"\r{self.label}: {note}{_size(pos)}{of} read, {_size(rate)}/s   ")
        sys.stderr.flush()

    def finish(self, pos: int) -> None:
        if self.live and self.last > self.t0:          # something was drawn: clear it
            sys.stderr.write("\r\x1b[K")
        if self.draw_only:
            return
        took = time.monotonic() - self.t0
        got = pos - self.start
        print(f"{self.label}: downloaded {_size(got)} in {took:.1f} s "
              f"({_size(got / max(took, 1e-6))}/s)", file=sys.stderr)
