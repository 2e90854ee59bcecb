"""Downloadable data sets: mnist, fashion-mnist, cifar10, flowers102 and places/<category>.

Each is a DatasetSource: ``fetch`` downloads and verifies, ``load`` fetches and prepares once
(cached by source and options, like the embedded sets). URLs go through GANZOO_MIRROR.
Checksums are the published ones (sha256 where known, else md5), pinned here.
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from ganzoo.data.archive import extract, read_tar_members
from ganzoo.data.cache import cache_key, load_prepared, save_prepared
from ganzoo.data.download import download_file, downloads_dir
from ganzoo.data.folder import load_folder
from ganzoo.data.places import category_of, fetch_category
from ganzoo.data.source import DatasetSource, ImageSet, PrepareOptions
from ganzoo.errors import GanzooError

_FILTERS = {"lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX}


@dataclass(frozen=True)
class Remote:
    """One file to download, with what is known to verify it."""

    url: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None

    @property
    def filename(self) -> str:
        return PurePosixPath(urlsplit(self.url).path).name

    def fetch(self, folder: str) -> Path:
        return download_file(self.url, Path(folder) / self.filename, sha256=self.sha256,
                             md5=self.md5, size=self.size, desc=f"{folder}/{self.filename}")


def resize_images(images: np.ndarray, options: PrepareOptions) -> np.ndarray:
    """uint8 [N, C, S, S] (square) -> [N, options.channels, R, R] with the named filter."""
    n, c, h, w = images.shape
    r = options.resolution
    if (c, h, w) == (options.channels, r, r):
        return images
    if options.resize_filter not in _FILTERS:
        raise GanzooError(f"unknown resize filter {options.resize_filter!r} "
                          f"(choose {' or '.join(_FILTERS)})")
    out = np.empty((n, options.channels, r, r), np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[0] if c == 1 else img.transpose(1, 2, 0))
        pil = pil.convert("L" if options.channels == 1 else "RGB")
        if pil.size != (r, r):
            pil = pil.resize((r, r), _FILTERS[options.resize_filter])
        arr = np.asarray(pil)
        out[i] = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return out


class ArraySource(DatasetSource):
    """A set that arrives as arrays (not image files): read natively, resized once, cached."""

    class_names: tuple[str, ...] = ()
    version = 1

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """Native uint8 [N, C, H, W] images and int64 labels (after fetch)."""
        raise NotImplementedError

    def load(self, spec: str, options: PrepareOptions) -> ImageSet:
        key = cache_key(source=self.name, version=self.version, resolution=options.resolution,
                        channels=options.channels, max_images=options.max_images,
                        resize_filter=options.resize_filter)
        data = load_prepared(key)
        if data is None:
            self.fetch(spec)
            images, labels = self.read()
            if options.max_images is not None:
                images, labels = images[:options.max_images], labels[:options.max_images]
            data = ImageSet(self.name, resize_images(images, options),
                            labels.astype(np.int64), self.class_names)
            save_prepared(key, data)
        return data


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes (the MNIST format), gzipped as distributed."""
    try:
        with gzip.open(path, "rb") as f:
            magic = f.read(4)
            if len(magic) != 4 or magic[:3] != b"\0\0\x08" or magic[3] != ndim:
                raise ValueError("not an IDX file of unsigned bytes")
            dims = struct.unpack(f">{ndim}I", f.read(4 * ndim))
            data = f.read()
    except (OSError, EOFError, ValueError, struct.error) as e:
        raise GanzooError(f"{path}: unreadable ({e}); delete it to download again") from None
    if len(data) != int(np.prod(dims)):
        raise GanzooError(f"{path}: {len(data)} bytes of data, expected {np.prod(dims)}")
    return np.frombuffer(data, np.uint8).reshape(dims)


class IdxSource(ArraySource):
    """MNIST-format sets: 28x28 grey images and labels, the training split."""

    def __init__(self, name: str, description: str, images: Remote, labels: Remote,
                 class_names: tuple[str, ...]):
        self.name, self.description = name, description
        self.images, self.labels, self.class_names = images, labels, class_names

    def fetch(self, spec: str) -> None:
        self.images.fetch(self.name)
        self.labels.fetch(self.name)

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        images = read_idx(self.images.fetch(self.name), 3)[:, None]
        labels = read_idx(self.labels.fetch(self.name), 1)
        if len(images) != len(labels):
            raise GanzooError(f"{self.name}: {len(images)} images but {len(labels)} labels")
        return images, labels


# The PyTorch mirror: yann.lecun.com no longer serves the files. Sizes and sha256 as published.
_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def mnist() -> IdxSource:
    return IdxSource(
        "mnist", "download (~10 MB): handwritten digits, 60,000 28x28 grey images, 10 classes",
        Remote(_MNIST + "train-images-idx3-ubyte.gz", size=9912422, sha256=(
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609")),
        Remote(_MNIST + "train-labels-idx1-ubyte.gz", size=28881, sha256=(
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c")),
        tuple(str(d) for d in range(10)))


def fashion_mnist() -> IdxSource:
    return IdxSource(
        "fashion-mnist", "download (~26 MB): Zalando clothing, 60,000 28x28 grey images, "
        "10 classes",
        Remote(_FASHION + "train-images-idx3-ubyte.gz", sha256=(
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84")),
        Remote(_FASHION + "train-labels-idx1-ubyte.gz", sha256=(
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845")),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot"))


class Cifar10Source(ArraySource):
    """The binary CIFAR-10 (never the pickled "python version": no pickle is ever run)."""

    name = "cifar10"
    description = "download (170 MB): 50,000 32x32 colour images, 10 classes (training batches)"
    archive = Remote("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", size=170052171,
                     sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd")
    folder = "cifar-10-batches-bin"
    batches = tuple(f"data_batch_{i}.bin" for i in range(1, 6))

    def fetch(self, spec: str) -> None:
        self.archive.fetch(self.name)

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        names = [f"{self.folder}/{b}" for b in (*self.batches, "batches.meta.txt")]
        members = read_tar_members(self.archive.fetch(self.name), names)
        self.class_names = tuple(members.pop(names[-1]).decode().split())
        records = np.frombuffer(b"".join(members[n] for n in names[:-1]), np.uint8)
        if records.size % 3073 or len(self.class_names) != 10:
            raise GanzooError(f"{self.name}: the archive does not hold CIFAR-10 binary batches")
        records = records.reshape(-1, 3073)          # one label byte, then 3x32x32 pixels
        return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)


class Flowers102Source(DatasetSource):
    """Oxford 102 Category Flowers: 8,189 images; labels from imagelabels.mat (classes are
    named 1..102, the data set's own numbering). The images are laid out in one folder per
    class, so the folder loader prepares them."""

    name = "flowers102"
    description = "download (~330 MB): 8,189 flower photos, 102 classes"
    _url = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
    images = Remote(_url + "102flowers.tgz", md5="52808999861908f626f3c1f4e79d11fa")
    labels = Remote(_url + "imagelabels.mat", md5="e0620be6f572b9609742df49c70aed4d")

    def by_class_dir(self) -> Path:
        return downloads_dir() / self.name / "by-class"

    def fetch(self, spec: str) -> None:
        root = self.by_class_dir()
        if (root / ".complete").exists():
            return
        from scipy.io import loadmat          # a plain MAT-file reader: no code is run
        labels = loadmat(self.labels.fetch(self.name))["labels"].ravel().astype(int)
        work = downloads_dir() / self.name / "extract"
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        extract(self.images.fetch(self.name), work)
        for i, label in enumerate(labels, 1):
            src = work / "jpg" / f"image_{i:05d}.jpg"
            if not src.exists():
                raise GanzooError(f"flowers102: {src.name}, labelled in imagelabels.mat, is "
                                  f"not in 102flowers.tgz")
            (root / f"{label:03d}").mkdir(parents=True, exist_ok=True)
            os.replace(src, root / f"{label:03d}" / src.name)
        shutil.rmtree(work, ignore_errors=True)
        (root / ".complete").write_text(f"{len(labels)} images\n")

    def load(self, spec: str, options: PrepareOptions) -> ImageSet:
        key = cache_key(source=self.name, version=1, resolution=options.resolution,
                        channels=options.channels, max_images=options.max_images,
                        resize_filter=options.resize_filter)
        data = load_prepared(key)
        if data is None:
            self.fetch(spec)
            data = load_folder(self.by_class_dir(), options)
            data = ImageSet(self.name, data.images, data.labels,
                            tuple(str(int(c)) for c in data.class_names))
            save_prepared(key, data)
        return data


class PlacesSource(DatasetSource):
    name = "places/"
    description = ("download: places/<category>, one of the 365 Places365-Standard scene "
                   "categories (3,068-5,000 256x256 images each), streamed from the archive")

    def fetch(self, spec: str) -> None:
        fetch_category(spec)

    def load(self, spec: str, options: PrepareOptions) -> ImageSet:
        category = category_of(spec)          # a typo fails here, before any download
        key = cache_key(source="places365", version=1, category=category,
                        resolution=options.resolution, channels=options.channels,
                        max_images=options.max_images, resize_filter=options.resize_filter)
        data = load_prepared(key)
        if data is None:
            data = load_folder(fetch_category(spec), options)
            data = ImageSet("places-" + category[3:].replace("/", "-"), data.images)
            save_prepared(key, data)
        return data


def downloadable_sources() -> list[DatasetSource]:
    return [mnist(), fashion_mnist(), Cifar10Source(), Flowers102Source(), PlacesSource()]
