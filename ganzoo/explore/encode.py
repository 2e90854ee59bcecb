"""Writing frames as a video file, the format chosen by the file's suffix.

MP4 goes through imageio with imageio-ffmpeg, whose wheel carries the ffmpeg binary (no
system install); GIF and WebP through Pillow, which ganzoo already needs. GIF keeps frames
exactly when each has at most 256 colours (greyscale always does) and WebP is written
lossless; MP4 (H.264, yuv420p) is lossy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from ganzoo.atomic import atomic_write
from ganzoo.errors import GanzooError

SUFFIXES = (".mp4", ".gif", ".webp")


def check_video_path(path: Path) -> str:
    """The format ``path`` asks for, checked before any frame is rendered."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise GanzooError(f"--out {path}: a video must end in {', '.join(SUFFIXES)}")
    if suffix == ".mp4":
        try:
            import imageio  # noqa: F401
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise GanzooError(f"--out {path}: MP4 needs imageio and imageio-ffmpeg (pip install "
                              "imageio imageio-ffmpeg); or write a .gif or .webp instead")
    return suffix


def write_video(frames: Iterable[np.ndarray], path: Path, fps: float) -> int:
    """Write HWC uint8 frames (1 or 3 channels) to ``path``; returns the frame count."""
    suffix = check_video_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".mp4":
        return _write_mp4(frames, path, fps)
    return _write_pillow(frames, path, fps, suffix)


def _rgb_even(frame: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs RGB frames of even width and height: edge-pad an odd one."""
    if frame.ndim == 2 or frame.shape[2] == 1:
        frame = np.repeat(frame.reshape(*frame.shape[:2], 1), 3, axis=2)
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _write_mp4(frames: Iterable[np.ndarray], path: Path, fps: float) -> int:
    import imageio.v2 as iio
    count = 0
    tmp = path.with_name("." + path.name + ".tmp.mp4")    # ffmpeg picks the muxer by suffix
    # macro_block_size=1: no silent resize to multiples of 16 (32 px stays 32 px);
    # quality 9 of 10: close to the rendered frames (the tests' tolerance is stated there).
    try:
        with iio.get_writer(tmp, fps=fps, codec="libx264", quality=9, macro_block_size=1,
                            pixelformat="yuv420p", ffmpeg_log_level="error") as writer:
            for frame in frames:
                writer.append_data(_rgb_even(frame))
                count += 1
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _pillow_frame(frame: np.ndarray, suffix: str) -> Image.Image:
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    img = Image.fromarray(frame)
    if suffix != ".gif" or img.mode == "L":
        return img
    colours, index = np.unique(frame.reshape(-1, 3), axis=0, return_inverse=True)
    if len(colours) <= 256:            # an exact palette: no dithering, no loss
        out = Image.fromarray(index.astype(np.uint8).reshape(frame.shape[:2]), "P")
        out.putpalette(colours.astype(np.uint8).tobytes())
        return out
    return img.quantize(256, Image.Quantize.MEDIANCUT)


def _write_pillow(frames: Iterable[np.ndarray], path: Path, fps: float, suffix: str) -> int:
    images = [_pillow_frame(f, suffix) for f in frames]
    if not images:
        raise GanzooError(f"{path}: no frames to write")
    # GIF counts time in hundredths of a second: 25 fps (40 ms) is exact, 30 fps is not.
    duration = round(1000 / fps)
    extra = {"lossless": True, "method": 4} if suffix == ".webp" else {"optimize": False}
    with atomic_write(path) as f:
        images[0].save(f, format=suffix[1:].upper(), save_all=True,
                       append_images=images[1:], duration=duration, loop=0, **extra)
    return len(images)
