"""Preparing image files: decode what PIL reads, convert, centre-crop, resize, cache.

One path for folders and zips. Files are decoded by worker processes (all cores by default),
in chunks, in file order. A file that cannot be used is skipped and counted by reason, never
fatal; one summary line says what happened. The result is cached once as uint8 arrays under
$GANZOO_HOME, keyed by the files (names, sizes, mtimes) and the options.

Conversion rules (the README repeats them):
- 16-bit and 32-bit greyscale (PIL modes I;16*, I, F) are scaled to 8 bits, not clipped;
- transparency (RGBA, LA, PA, P with a transparent colour) is composited on white;
- CMYK and every other mode go through PIL's conversion to RGB or L;
- EXIF orientation is applied (phone photos store their rotation there);
- images whose shorter side is under 8 px (or under the target resolution, if smaller) are
  skipped as "too small": upsampling a 1x1 image gives a flat square, not a picture;
- more pixels than PIL.Image.MAX_IMAGE_PIXELS is refused as a decompression bomb.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import math
import os
import signal
import sys
import threading
import time
import warnings
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ganzoo.atomic import atomic_write_text
from ganzoo.data.cache import cache_key, ganzoo_home, load_prepared, save_prepared
from ganzoo.data.source import ImageSet, PrepareOptions
from ganzoo.errors import GanzooError

PREPARE_VERSION = 1            # bump when the decoded pixels change, to invalidate caches
RESIZE_FILTERS = {"lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX}
BACKGROUND = (255, 255, 255)   # what transparent pixels become
MIN_SIDE = 8                   # smaller images are skipped (see the module docstring)
MAX_MEMBER_BYTES = 256 << 20   # a zip member claiming more is skipped unread
MIN_FILES_PER_WORKER = 32      # below this a process pool costs more than it saves
MAX_CHUNK = 256
PR_SET_PDEATHSIG = 1           # from <linux/prctl.h>


class Skipped(Exception):
    """A file preparation leaves out; ``str(e)`` is the reason counted in the summary."""


def check_options(options: PrepareOptions) -> None:
    if options.resize_filter not in RESIZE_FILTERS:
        raise GanzooError(f"--resize-filter {options.resize_filter}: expected one of "
                          f"{', '.join(RESIZE_FILTERS)}")
    if options.channels not in (1, 3):
        raise GanzooError(f"--channels must be 1 or 3, got {options.channels}")
    if options.resolution < 1:
        raise GanzooError(f"--resolution must be >= 1, got {options.resolution}")
    if options.max_images is not None and options.max_images < 1:
        raise GanzooError(f"--max-images must be > 0, got {options.max_images}")


# -- one image ---------------------------------------------------------------------------------

def _to_8bit(img: Image.Image) -> Image.Image:
    """Any PIL mode -> an 8-bit mode that converts to RGB or L without losing the picture."""
    if img.mode.startswith("I") or img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or (img.mode == "I" and a.max() > 255):
            a = a / 257.0                      # 16-bit range -> 8-bit (65535 -> 255)
        elif img.mode == "F" and a.max() <= 1.0:
            a = a * 255.0                      # float images in [0, 1]
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        background = Image.new("RGBA", img.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    return img


def to_array(img: Image.Image, options: PrepareOptions) -> np.ndarray:
    """A decoded image -> uint8 CHW at ``options.resolution`` (centre-cropped square)."""
    img = _to_8bit(ImageOps.exif_transpose(img))
    w, h = img.size
    side, res = min(w, h), options.resolution
    if side < min(MIN_SIDE, res):
        raise Skipped("too small")
    img = img.convert("L" if options.channels == 1 else "RGB")
    box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    if side == res:
        img = img.crop(box)
    else:
        img = img.resize((res, res), RESIZE_FILTERS[options.resize_filter], box=box)
    arr = np.asarray(img)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def decode(f: BinaryIO, options: PrepareOptions) -> np.ndarray:
    """Read one image file; raises :class:`Skipped` with the reason when it is unusable."""
    if not f.read(1):
        raise Skipped("empty file")
    f.seek(0)
    try:
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x MAX_IMAGE_PIXELS; we refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as img:
                img.load()
                return to_array(img, options)
    except Skipped:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Skipped("decompression bomb") from None
    except UnidentifiedImageError:
        raise Skipped("not an image") from None
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, ...
        raise Skipped("truncated" if "truncat" in str(e).lower() else "corrupt") from None


# -- many images, in worker processes ----------------------------------------------------------

@dataclass(frozen=True)
class ImageFiles:
    """The image files of one source: paths relative to a folder, or members of a zip."""

    root: Path
    names: tuple[str, ...]
    in_zip: bool = False

    def fingerprint(self) -> str:
        """Changes when a file is added, removed, renamed or rewritten."""
        h = hashlib.sha256(f"{self.root.resolve()}\0{self.in_zip}\0".encode())
        for name in self.names:
            h.update(os.fsencode(name) + b"\0")     # names that are not UTF-8 too
        for path in [self.root] if self.in_zip else (self.root / n for n in self.names):
            try:
                st = path.stat()
                h.update(f"{st.st_size}:{st.st_mtime_ns}\n".encode())
            except FileNotFoundError:     # deleted since listing: decoding skips and counts it
                h.update(b"gone\n")
        return h.hexdigest()


@contextlib.contextmanager
def _opener(root: str, in_zip: bool) -> Iterator[Callable[[str], BinaryIO]]:
    if not in_zip:
        yield lambda name: open(os.path.join(root, name), "rb")
        return
    with zipfile.ZipFile(root) as zf:
        def read_member(name: str) -> BinaryIO:
            if zf.getinfo(name).file_size > MAX_MEMBER_BYTES:
                raise Skipped("too large")
            return io.BytesIO(zf.read(name))
        yield read_member


def is_utf8(name: str) -> bool:
    try:
        name.encode()
        return True
    except UnicodeEncodeError:     # undecodable bytes, kept by Python as lone surrogates
        return False


def _decode_one(open_file: Callable[[str], BinaryIO], name: str,
                options: PrepareOptions) -> np.ndarray:
    # A name that is not UTF-8 could not go into a dataset.json, a report or a terminal.
    if not is_utf8(name):
        raise Skipped("name not UTF-8")
    try:
        with open_file(name) as f:
            return decode(f, options)
    except FileNotFoundError:               # deleted since the folder was listed
        raise Skipped("vanished") from None
    except zipfile.BadZipFile:              # bad CRC, damaged member
        raise Skipped("corrupt") from None
    except OSError:                         # permissions, I/O errors
        raise Skipped("unreadable") from None


def _decode_names(open_file: Callable[[str], BinaryIO], names: list[str],
                  options: PrepareOptions) -> list[np.ndarray | str]:
    """Decode ``names``; an unusable file gives its skip reason instead of an image."""
    results: list[np.ndarray | str] = []
    for name in names:
        try:
            results.append(_decode_one(open_file, name, options))
        except Skipped as e:
            results.append(str(e))
    return results


# In a worker process: its source, opened once by _start_worker. Reopening a zip per chunk
# re-read its whole central directory each time: a 200k-member zip took over 5 minutes.
_worker_source = contextlib.ExitStack()
_worker_open: Callable[[str], BinaryIO] | None = None


def _start_worker(root: str, in_zip: bool, parent: int) -> None:
    global _worker_open
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
    _die_with_parent(parent)
    # never closed: the file goes with the process, and the worker lives as long as the pool
    _worker_open = _worker_source.enter_context(_opener(root, in_zip))


def _decode_chunk(task: tuple[list[str], PrepareOptions]) -> list[np.ndarray | str]:
    """Worker: decode a chunk of the source _start_worker opened."""
    names, options = task
    return _decode_names(_worker_open, names, options)


def _die_with_parent(parent: int) -> None:
    """Exit when ``parent`` dies. SIGKILL and SIGTERM skip the pool's cleanup, and a worker
    left waiting for tasks lived on for minutes (170 MB each). On Linux the kernel sends us
    SIGKILL (PR_SET_PDEATHSIG: fires even inside a long C call that holds the GIL); elsewhere
    a thread polls. Both follow the process that forked us, which, with the executor, is the
    thread that submits the work and waits for it."""
    if _set_pdeathsig():
        if not _alive(parent):           # it died before prctl took effect
            os._exit(1)
        return
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _set_pdeathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):   # gone, or its pid is someone else's now
        return False
    return True


def _watch_parent(parent: int) -> None:
    while _alive(parent):
        time.sleep(1.0)
    os._exit(1)


def default_workers() -> int:
    return os.cpu_count() or 1


def decode_all(files: ImageFiles, names: list[str], options: PrepareOptions,
               workers: int | None = None) -> Iterator[np.ndarray | str]:
    """Decode ``names`` (of ``files``) in order, with up to ``workers`` processes."""
    workers = min(workers or default_workers(), math.ceil(len(names) / MIN_FILES_PER_WORKER))
    source = (str(files.root), files.in_zip)
    if workers <= 1:
        with _opener(*source) as open_file:
            yield from _decode_names(open_file, names, options)
        return
    size = max(1, min(MAX_CHUNK, len(names) // (workers * 4)))
    tasks = [(names[i:i + size], options) for i in range(0, len(names), size)]
    # A process pool, not threads: PIL holds the GIL for much of decoding. The executor (not
    # multiprocessing.Pool) because a worker killed by a crashing decoder or the OOM killer
    # raises BrokenProcessPool here instead of hanging forever.
    pool = ProcessPoolExecutor(workers, initializer=_start_worker,
                               initargs=(*source, os.getpid()))
    try:
        for results in pool.map(_decode_chunk, tasks):
            yield from results
    except BrokenProcessPool:
        raise GanzooError(f"a worker process died while preparing images from {files.root} "
                          "(out of memory, or a file that crashes the image decoder)") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class Prepared:
    """What preparation made of a list of files."""

    images: np.ndarray                 # uint8 [len(kept), C, R, R]
    kept: list[int]                    # indices into ImageFiles.names of those images
    skipped: dict[int, str] = field(default_factory=dict)   # index -> reason
    tried: int = 0

    def reasons(self) -> str:
        counts = Counter(self.skipped.values())
        return ", ".join(f"{reason} x{n}" for reason, n in sorted(counts.items()))

    def summary(self, where: str) -> str:
        line = f"prepared {len(self.kept)} of {self.tried} images from {where}"
        if self.skipped:
            line += f" (skipped {len(self.skipped)}: {self.reasons()})"
        return line


def prepare_files(files: ImageFiles, options: PrepareOptions,
                  workers: int | None = None) -> Prepared:
    """Decode files in order until ``options.max_images`` usable images (default: all)."""
    check_options(options)
    want = min(options.max_images or len(files.names), len(files.names))
    shape = (options.channels, options.resolution, options.resolution)
    images = np.empty((want, *shape), np.uint8)
    result = Prepared(images, [])
    # With --max-images, try just enough files; top up if some of them were skipped.
    while len(result.kept) < want and result.tried < len(files.names):
        names = list(files.names[result.tried:result.tried + want - len(result.kept)])
        for index, out in enumerate(decode_all(files, names, options, workers), result.tried):
            if isinstance(out, str):
                result.skipped[index] = out
            else:
                images[len(result.kept)] = out
                result.kept.append(index)
        result.tried += len(names)
    result.images = images[:len(result.kept)]
    return result


# -- prepared once, cached ----------------------------------------------------------------------

def load_files(files: ImageFiles, options: PrepareOptions, *, name: str,
               labels: np.ndarray | None = None, class_names: tuple[str, ...] = (),
               where: str | None = None) -> ImageSet:
    """Prepare ``files`` (labels: one per file) or load the cached result; print a summary."""
    check_options(options)
    where = where or str(files.root)
    key = cache_key(source="files", version=PREPARE_VERSION, files=files.fingerprint(),
                    resolution=options.resolution, channels=options.channels,
                    max_images=options.max_images, resize_filter=options.resize_filter,
                    name=name, class_names=list(class_names),
                    labels=None if labels is None else hashlib.sha256(
                        np.ascontiguousarray(labels, np.int64).tobytes()).hexdigest())
    report = ganzoo_home() / "prepared" / f"{key}.txt"
    data = load_prepared(key)
    if data is not None:
        text = report.read_text().strip() if report.exists() else \
            f"prepared {len(data)} images from {where}"
        print(f"{text} (cached)")
        return data
    prepared = prepare_files(files, options)
    if not prepared.kept:
        raise GanzooError(f"none of the {prepared.tried} image files in {where} could be "
                          f"used ({prepared.reasons()})")
    data = ImageSet(name, prepared.images,
                    None if labels is None else np.asarray(labels, np.int64)[prepared.kept],
                    tuple(class_names))
    save_prepared(key, data)
    atomic_write_text(report, prepared.summary(where) + "\n")
    print(prepared.summary(where))
    return data
