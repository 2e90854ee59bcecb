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
# A label file is ~30 bytes per image: 64 MiB holds 2 million, more than any zip of images we
# know. Without a cap a 1 MB zip can inflate to a gigabyte of "JSON" (the audit's bomb).
MAX_META_BYTES = 64 << 20
# Classes are max(label) + 1 (as in stylegan2-ada) and size a class-name table and a
# conditional model's embedding: 10^9 was 5.4 GB of names. ImageNet-21k has 21,841 classes.
MAX_CLASSES = 100_000


def check_member_name(zip_path: Path, name: str) -> None:
    """Refuse names that would escape a directory if anyone extracted the zip."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or _DRIVE.match(name) or ".." in parts or "\0" in name:
        raise GanzooError(f"zip {zip_path}: unsafe member name {name!r} (absolute path or "
                          "'..'); refusing to read it")


def _declared_size(info: zipfile.ZipInfo) -> int:
    return info.file_size


def _read_meta(where: str, zf: zipfile.ZipFile) -> object:
    """dataset.json, parsed; at most MAX_META_BYTES are ever decompressed."""
    info = zf.getinfo("dataset.json")
    if _declared_size(info) > MAX_META_BYTES:      # refused before a byte is inflated
        raise GanzooError(f"{where} is {info.file_size} bytes; at most {MAX_META_BYTES} are "
                          "read (a label file of 2 million images is 60 MB)")
    with zf.open(info) as f:          # the header may lie: the read stops one byte past the cap
        raw = f.read(MAX_META_BYTES + 1)
    if len(raw) > MAX_META_BYTES:
        raise GanzooError(f"{where} is over {MAX_META_BYTES} bytes; refusing to read it")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:        # RecursionError: [[[[... nested too deep
        raise GanzooError(f"{where} is not valid JSON ({str(e)[:200]})") from None


def _check_labels(where: str, names: list[str], values: list) -> None:
    """Class indices in [0, MAX_CLASSES): checked before anything is sized by them."""
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise GanzooError(f"{where}: labels must be class indices >= 0 (vector labels are not "
                          "supported)")
    top = max(values, default=0)
    if top >= MAX_CLASSES:
        raise GanzooError(f"{where}: label {top} of {names[values.index(top)]}: at most "
                          f"{MAX_CLASSES} classes (labels 0-{MAX_CLASSES - 1}) are supported")


def _class_names(where: str, meta: dict, n: int) -> tuple[str, ...]:
    names = meta.get("class_names")
    if names is None:
        return tuple(str(i) for i in range(n))
    if not isinstance(names, list) or len(names) < n or not all(
            isinstance(c, str) for c in names):
        raise GanzooError(f'{where}: "class_names" must be a list of {n} or more strings')
    if len(names) > MAX_CLASSES:
        raise GanzooError(f'{where}: "class_names": {len(names)} names, at most {MAX_CLASSES}')
    return tuple(names)


def _labels(zip_path: Path, zf: zipfile.ZipFile, names: list[str]
            ) -> tuple[np.ndarray | None, tuple[str, ...]]:
    if "dataset.json" not in zf.namelist():
        return None, ()
    where = f"zip {zip_path}: dataset.json"
    meta = _read_meta(where, zf)
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
    _check_labels(where, names, values)
    labels = np.array(values, np.int64)
    return labels, _class_names(where, meta, int(labels.max()) + 1 if len(labels) else 0)


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
