"""Data: the embedded shapes set, image folders, the resumable batch order."""
from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest
from PIL import Image

from ganzoo.data import PrepareOptions, bin_objects, resolve_data
from ganzoo.data.bin_objects import KINDS as BIN_KINDS, make_bin_objects
from ganzoo.data.loader import BatchOrder, ImageSetDataset, make_loader
from ganzoo.data.source import ImageSet
from ganzoo.data.shapes import SHAPE_KINDS, make_shapes
from ganzoo.errors import GanzooError
from ganzoo.registry import Registry


def test_shapes_deterministic_by_seed_and_any_resolution():
    a, b, c = make_shapes(20, 32, seed=1), make_shapes(20, 32, seed=1), make_shapes(20, 32, seed=2)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert make_shapes(3, 256).images.shape == (3, 3, 256, 256)
    assert make_shapes(3, 28, channels=1).images.shape == (3, 1, 28, 28)
    assert a.class_names == SHAPE_KINDS and list(a.labels[:6]) == [0, 1, 2, 3, 4, 0]


@pytest.mark.parametrize("style", ["plain", "colour"])
def test_shapes_images_are_shape_on_plain_background(style):
    data = make_shapes(50, 64, seed=0, style=style)
    for img in data.images.astype(int):
        corners = np.stack([img[:, 0, 0], img[:, 0, -1], img[:, -1, 0], img[:, -1, -1]])
        assert np.abs(corners - corners[0]).max() <= 1            # one background colour
        differs = np.abs(img - corners[0][:, None, None]).sum(0) > 60
        assert 0.1 < differs.mean() < 0.6                           # a shape is there
        if style == "plain":                                        # white on black
            assert corners[0].max() == 0 and img.max() == 255


def test_shapes_colour_is_the_version_2_set():
    """`shapes/colour` keeps, pixel for pixel, the images the coloured `shapes` had before the
    plain style became the default (digest taken from the version 2 generator)."""
    data = make_shapes(20, 32, seed=0, style="colour")
    assert data.name == "shapes-colour"
    assert hashlib.sha256(data.images.tobytes()).hexdigest()[:16] == "45f63d82eaef65e7"


def test_shapes_source_caches(ganzoo_home):
    reg = Registry()
    a = resolve_data("shapes", PrepareOptions(16, max_images=10), reg)
    assert len(a) == 10 and a.resolution == 16
    assert list((ganzoo_home / "prepared").glob("*.npz"))
    b = resolve_data("shapes", PrepareOptions(16, max_images=10), reg)
    assert np.array_equal(a.images, b.images)


def test_folder_with_class_subfolders_and_a_corrupt_file(tmp_path, capsys):
    for cls, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (40, 30), colour).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"not a jpeg")
    data = resolve_data(str(tmp_path), PrepareOptions(16), Registry())
    assert data.images.shape == (6, 3, 16, 16)
    assert data.class_names == ("cats", "dogs") and list(data.labels) == [0, 0, 0, 1, 1, 1]
    assert data.images[0, 0, 8, 8] == 255 and data.images[5, 2, 8, 8] == 255
    assert "prepared 6 of 7 images" in capsys.readouterr().out


def test_flat_folder_has_no_labels(tmp_path):
    Image.new("L", (8, 8), 7).save(tmp_path / "a.png")
    data = resolve_data(str(tmp_path), PrepareOptions(8, channels=1), Registry())
    assert data.labels is None and data.images.shape == (1, 1, 8, 8)


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(GanzooError, match="no images found"):
        resolve_data(str(tmp_path), PrepareOptions(8), Registry())


def test_batch_order_resumes_anywhere_and_covers_each_epoch():
    full = list(itertools.islice(iter(BatchOrder(10, 4, seed=3)), 10))
    stream = [i for b in full for i in b]
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    assert stream[:10] != stream[10:20]                       # a new permutation per epoch
    resumed = list(itertools.islice(iter(BatchOrder(10, 4, seed=3, start=12)), 7))
    assert [i for b in resumed for i in b] == stream[12:40]
    ranks = [next(iter(BatchOrder(10, 4, 3, rank=r, world_size=2))) for r in (0, 1)]
    assert sorted(ranks[0] + ranks[1]) == sorted(full[0])


# -- bin-objects ---------------------------------------------------------------------------------

def test_bin_objects_deterministic_by_seed_any_resolution_and_count():
    a, b = make_bin_objects(10, 32, seed=1), make_bin_objects(10, 32, seed=1)
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, make_bin_objects(10, 32, seed=2).images)
    assert np.array_equal(make_bin_objects(4, 32, seed=1).images, a.images[:4])  # image i: (seed, i)
    assert make_bin_objects(2, 24, channels=1).images.shape == (2, 1, 24, 24)
    assert make_bin_objects(1, 128).images.shape == (1, 3, 128, 128)


def test_bin_objects_worker_processes_give_the_same_images():
    one = make_bin_objects(130, 16, seed=3, workers=1)
    two = make_bin_objects(130, 16, seed=3, workers=2)
    assert np.array_equal(one.images, two.images)


def test_bin_objects_labels_by_kind_and_by_count():
    reg = Registry()
    kinds = resolve_data("bin-objects", PrepareOptions(32, max_images=60), reg)
    counts = resolve_data("bin-objects/count", PrepareOptions(32, max_images=60), reg)
    assert np.array_equal(kinds.images, counts.images)        # same pictures, other labels
    assert kinds.class_names == BIN_KINDS == ("box", "bottle", "can", "tube", "ball")
    assert counts.class_names == ("1", "2", "3", "4", "5", "6")
    assert list(kinds.labels[:7]) == [0, 1, 2, 3, 4, 0, 1]
    assert list(counts.labels[:12:5]) == [0, 1, 2]            # 1, 2, 3 objects
    assert set(kinds.labels) == set(range(5)) and set(counts.labels) == set(range(6))
    assert np.bincount(counts.labels).tolist() == [10] * 6    # balanced


def test_bin_objects_look_like_a_grey_bin():
    data = make_bin_objects(30, 64, seed=0)
    img = data.images.astype(int)
    rim = img[:, :, 6:9, 24:40].reshape(30, 3, -1).mean(-1)      # top rim, middle
    assert np.abs(rim - rim.mean(1, keepdims=True)).max() < 20   # grey: R ~ G ~ B
    colourful = (img.max(1) - img.min(1) > 60).mean((1, 2))      # saturated object pixels
    labels = bin_objects.count_of(np.arange(30))
    assert colourful[labels == 6].mean() > 2 * colourful[labels == 1].mean()


def test_xflip_doubles_the_set_with_mirror_images():
    images = np.arange(2 * 3 * 2 * 2, dtype=np.uint8).reshape(2, 3, 2, 2)
    data = ImageSet("t", images, np.array([0, 1]), ("a", "b"))
    flipped = ImageSetDataset(data, xflip=True)
    assert len(flipped) == 4 and len(ImageSetDataset(data)) == 2
    batch, labels = flipped.__getitems__([3, 0, 2])
    assert np.array_equal(batch[0].numpy(), images[1, :, :, ::-1])
    assert np.array_equal(batch[1].numpy(), images[0])
    assert np.array_equal(batch[2].numpy(), images[0, :, :, ::-1])
    assert labels.tolist() == [1, 0, 0]
    assert np.array_equal(data.images, images)                # the set itself is untouched
    loader = make_loader(flipped, BatchOrder(len(flipped), 4, seed=0))
    first_epoch, _ = next(iter(loader))                        # each image once each way
    assert sorted(first_epoch.reshape(4, -1).tolist()) == sorted(
        [*images.reshape(2, -1).tolist(), *images[..., ::-1].reshape(2, -1).tolist()])
