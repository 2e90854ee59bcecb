"""Zips in the stylegan2-ada dataset layout, read and written.

Layout (as stylegan2-ada's dataset_tool.py writes and its ImageFolderDataset reads): image
files anywhere in the zip, taken in sorted name order; an optional top-level ``dataset.json``
``{"labels": [["00000/img00000000.png", 3], ...]}`` or ``{"labels": null}``. ganzoo adds
``"class_names": [...]`` when it writes one (stylegan2-ada ignores extra keys); without it the
classes are named "0".."n-1". A zip without dataset.json is unlabelled.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from ganzoo.atomic import atomic_write
from ganzoo.data.folder import is_image_name
from ganzoo.data.prepare import ImageFiles, load_files
from ganzoo.data.source import ImageSet, PrepareOptions
from ganzoo.errors import GanzooError

_DRIVE = re.compile(r"^[A-Za-z]:")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)   # same images, same zip bytes


def check_member_name(zip_path: Path, name: str) -> None:
    """Refuse names that would escape a directory if anyone extracted the zip."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or _DRIVE.match(name) or ".." in parts or "\0" in name:
        raise GanzooError(f"zip {zip_path}: unsafe member name {name!r} (absolute path or "
                          "'..'); refusing to read it")


def _labels(zip_path: Path, zf: zipfile.ZipFile, names: list[str]
            ) -> tuple[np.ndarray | None, tuple[str, ...]]:
    if "dataset.json" not in zf.namelist():
        return None, ()
    where = f"zip {zip_path}: dataset.json"
    try:
        meta = json.loads(zf.read("dataset.json"))
    except ValueError as e:
        raise GanzooError(f"{where} is not valid JSON ({e})") from None
    raw = meta.get("labels") if isinstance(meta, dict) else None
    if raw is None:
        return None, ()
    try:
        table = {str(n): v for n, v in raw}
    except (TypeError, ValueError):
        raise GanzooError(f'{where}: "labels" must be a list of [name, label] pairs') from None
    missing = [n for n in names if n not in table]
    if missing:
        raise GanzooError(f"{where} has no label for {len(missing)} of {len(names)} images "
                          f"(first: {missing[0]})")
    values = [table[n] for n in names]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise GanzooError(f"{where}: labels must be class indices >= 0 (vector labels are not "
                          "supported)")
    labels = np.array(values, np.int64)
    n = int(labels.max()) + 1 if len(labels) else 0
    class_names = meta.get("class_names") or [str(i) for i in range(n)]
    if len(class_names) < n or not all(isinstance(c, str) for c in class_names):
        raise GanzooError(f'{where}: "class_names" must be {n} or more strings')
    return labels, tuple(class_names)


def load_zip(path: Path, options: PrepareOptions) -> ImageSet:
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.namelist()
            for name in members:
                check_member_name(path, name)
            names = sorted(n for n in members if is_image_name(n) and not n.endswith("/"))
            if not names:
                raise GanzooError(f"zip {path}: no images in it")
            labels, class_names = _labels(path, zf, names)
    except zipfile.BadZipFile as e:
        raise GanzooError(f"zip {path}: not a readable zip file ({e})") from None
    return load_files(ImageFiles(path, tuple(names), in_zip=True), options, name=path.stem,
                      labels=labels, class_names=class_names)


def member_name(index: int) -> str:
    """stylegan2-ada's naming: 1000 images per folder, 00000/img00000000.png."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def _png(image: np.ndarray) -> bytes:
    arr = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_zip(data: ImageSet, path: Path) -> None:
    """Write ``data`` in the stylegan2-ada layout; atomic: ``path`` is the old or new zip."""
    names = [member_name(i) for i in range(len(data))]
    meta: dict = {"labels": None}
    if data.labels is not None:
        meta = {"labels": [[n, int(label)] for n, label in zip(names, data.labels)],
                "class_names": list(data.class_names)}
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        for name, image in zip(names, data.images):
            zf.writestr(zipfile.ZipInfo(name, _FIXED_TIME), _png(image))
        zf.writestr(zipfile.ZipInfo("dataset.json", _FIXED_TIME), json.dumps(meta))
