"""Preparing image files: bad files skipped and counted, conversions, bombs, caching, zips."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganzoo.data import PrepareOptions, resolve_data
from ganzoo.data.folder import list_images
from ganzoo.data.prepare import ImageFiles, prepare_files
from ganzoo.data.source import ImageSet
from ganzoo.data.zipset import load_zip, member_name, write_zip
from ganzoo.errors import GanzooError
from ganzoo.registry import Registry


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG file that claims width x height 1-bit pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                               1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def make_bad_folder(root: Path) -> Path:
    """One good image, three that need converting, four that cannot be used."""
    root.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (255, 0, 0)).save(root / "good.png")
    Image.new("CMYK", (24, 24), (255, 0, 0, 0)).save(root / "cmyk.jpg")     # pure cyan ink
    deep = Image.fromarray(np.full((20, 20), 16384, np.uint16))             # 1/4 of 65535
    assert deep.mode == "I;16"
    deep.save(root / "deep.png")
    Image.new("RGBA", (20, 20), (0, 0, 0, 128)).save(root / "rgba.png")      # half-transparent
    whole = png_bytes(Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (64, 64, 3), np.uint8)))
    (root / "truncated.png").write_bytes(whole[:len(whole) // 2])
    (root / "text.png").write_text("this is not a picture\n")
    (root / "empty.png").write_bytes(b"")
    Image.new("RGB", (1, 1), (0, 255, 0)).save(root / "tiny.png")
    return root


def test_bad_folder_skips_the_unusable_converts_the_rest_and_says_so(tmp_path, capsys):
    root = make_bad_folder(tmp_path / "bad")
    files = ImageFiles(root, tuple(list_images(root)))
    prepared = prepare_files(files, PrepareOptions(16), workers=1)
    reasons = {files.names[i]: r for i, r in prepared.skipped.items()}
    assert reasons == {"truncated.png": "truncated", "text.png": "not an image",
                       "empty.png": "empty file", "tiny.png": "too small"}
    assert [files.names[i] for i in prepared.kept] == ["cmyk.jpg", "deep.png", "good.png",
                                                       "rgba.png"]
    img = prepared.images
    assert img.shape == (4, 3, 16, 16) and img.dtype == np.uint8
    assert np.abs(img[0, :, 8, 8].astype(int) - (0, 255, 255)).max() <= 3   # CMYK cyan -> RGB
    assert img[1, :, 8, 8].tolist() == [64, 64, 64]      # 16384/65535 of white, not clipped
    assert img[2, :, 8, 8].tolist() == [255, 0, 0]
    assert img[3, :, 8, 8].tolist() == [127, 127, 127]   # 50% black over white

    data = resolve_data(str(root), PrepareOptions(16), Registry())   # the same, via --data
    assert np.array_equal(data.images, img) and data.labels is None
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"prepared 4 of 8 images from {root} (skipped 4: empty file x1, "
                   "not an image x1, too small x1, truncated x1)"]


def test_greyscale_preparation_and_the_16_bit_image(tmp_path):
    root = make_bad_folder(tmp_path / "bad")
    files = ImageFiles(root, ("deep.png", "good.png"))
    img = prepare_files(files, PrepareOptions(8, channels=1), workers=1).images
    assert img.shape == (2, 1, 8, 8)
    assert img[0, 0, 4, 4] == 64 and img[1, 0, 4, 4] == 76   # ITU-R 601 luma of red


def test_worker_processes_give_the_same_result(tmp_path):
    root = make_bad_folder(tmp_path / "many")
    for i in range(70):
        Image.new("RGB", (30 + i, 32), (i, 2 * i, 3 * i)).save(root / f"img{i:03d}.png")
    files = ImageFiles(root, tuple(list_images(root)))
    one = prepare_files(files, PrepareOptions(16), workers=1)
    two = prepare_files(files, PrepareOptions(16), workers=2)
    assert np.array_equal(one.images, two.images)
    assert one.kept == two.kept and one.skipped == two.skipped and len(one.kept) == 74


def test_empty_folder_is_one_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no pictures here")
    with pytest.raises(GanzooError, match=r"^no images found under .* \(looked for .*\.png"):
        resolve_data(str(tmp_path), PrepareOptions(8), Registry())


def test_folder_of_only_unusable_files_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_text("text")
    with pytest.raises(GanzooError, match=r"none of the 2 image files .* could be used "
                                          r"\(empty file x1, not an image x1\)"):
        resolve_data(str(tmp_path), PrepareOptions(8), Registry())


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    (tmp_path / "bomb.png").write_bytes(png_header_only(100_000, 100_000))  # 10^10 pixels
    assert (tmp_path / "bomb.png").stat().st_size < 100
    Image.new("RGB", (40, 40)).save(tmp_path / "big.png")
    Image.new("RGB", (20, 20)).save(tmp_path / "ok.png")
    # Between 1x and 2x the limit PIL only warns; preparation refuses that too.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    files = ImageFiles(tmp_path, ("big.png", "bomb.png", "ok.png"))
    prepared = prepare_files(files, PrepareOptions(16), workers=1)
    assert prepared.skipped == {0: "decompression bomb", 1: "decompression bomb"}
    assert prepared.kept == [2]
    assert "skipped 2: decompression bomb x2" in prepared.summary("here")


def test_class_subfolders_give_labels_and_class_names(tmp_path):
    for cls, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / cls / "deeper").mkdir(parents=True)
        Image.new("RGB", (20, 20), colour).save(tmp_path / cls / "a.png")
        Image.new("RGB", (20, 20), colour).save(tmp_path / cls / "deeper" / "b.png")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.png").write_text("ignored: hidden folder")
    data = resolve_data(str(tmp_path), PrepareOptions(8), Registry())
    assert data.class_names == ("cats", "dogs") and data.labels.tolist() == [0, 0, 1, 1]
    assert data.images[:, 2].max(axis=(1, 2)).tolist() == [0, 0, 255, 255]


def test_preparation_is_cached_until_a_file_changes(tmp_path, capsys):
    for i in range(3):
        Image.new("L", (10, 10), 50 * i).save(tmp_path / f"{i}.png")
    first = resolve_data(str(tmp_path), PrepareOptions(8, channels=1), Registry())
    second = resolve_data(str(tmp_path), PrepareOptions(8, channels=1), Registry())
    assert np.array_equal(first.images, second.images)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == lines[0] + " (cached)"
    Image.new("L", (10, 10), 255).save(tmp_path / "0.png")
    os.utime(tmp_path / "0.png", ns=(1, 1))         # a rewritten file: new size/mtime
    third = resolve_data(str(tmp_path), PrepareOptions(8, channels=1), Registry())
    assert third.images[0].min() == 255 and "(cached)" not in capsys.readouterr().out


def test_max_images_tops_up_past_skipped_files(tmp_path):
    (tmp_path / "0.png").write_text("bad")
    for i in range(1, 6):
        Image.new("L", (10, 10), i).save(tmp_path / f"{i}.png")
    files = ImageFiles(tmp_path, tuple(list_images(tmp_path)))
    prepared = prepare_files(files, PrepareOptions(8, channels=1, max_images=3), workers=1)
    assert prepared.kept == [1, 2, 3] and prepared.tried == 4
    assert prepared.images[:, 0, 0, 0].tolist() == [1, 2, 3]


def test_resize_filter_is_used_and_checked(tmp_path):
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    Image.fromarray(checker).save(tmp_path / "c.png")
    files = ImageFiles(tmp_path, ("c.png",))
    box = prepare_files(files, PrepareOptions(24, 1, resize_filter="box"), workers=1).images
    lanczos = prepare_files(files, PrepareOptions(24, 1), workers=1).images
    assert not np.array_equal(box, lanczos)
    with pytest.raises(GanzooError, match="--resize-filter bicubic: expected one of lanczos"):
        resolve_data(str(tmp_path), PrepareOptions(24, resize_filter="bicubic"), Registry())


# -- zips in the stylegan2-ada layout ----------------------------------------------------------

def labelled_set(n: int = 12, resolution: int = 16) -> ImageSet:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 3, resolution, resolution), dtype=np.uint8)
    return ImageSet("toy", images, np.arange(n, dtype=np.int64) % 3, ("a", "b", "c"))


def test_written_zip_has_the_stylegan2_ada_layout_and_loads_back(tmp_path):
    data = labelled_set()
    write_zip(data, tmp_path / "toy.zip")
    with zipfile.ZipFile(tmp_path / "toy.zip") as zf:
        names = sorted(zf.namelist())
        meta = json.loads(zf.read("dataset.json"))
        first = np.asarray(Image.open(io.BytesIO(zf.read("00000/img00000000.png"))))
    assert names == ["00000/img00000000.png", "00000/img00000001.png",
                     *[f"00000/img{i:08d}.png" for i in range(2, 12)], "dataset.json"]
    assert meta["labels"][:2] == [["00000/img00000000.png", 0], ["00000/img00000001.png", 1]]
    assert meta["class_names"] == ["a", "b", "c"]
    assert np.array_equal(first, data.images[0].transpose(1, 2, 0))
    assert member_name(1234) == "00001/img00001234.png"      # 1000 images per folder
    back = resolve_data(str(tmp_path / "toy.zip"), PrepareOptions(16), Registry())
    assert np.array_equal(back.images, data.images)
    assert np.array_equal(back.labels, data.labels) and back.class_names == ("a", "b", "c")


def test_foreign_zips_labels_unlabelled_and_default_class_names(tmp_path):
    path = tmp_path / "foreign.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, name in enumerate(["x/1.png", "y/2.jpg", "3.png"]):
            buf = io.BytesIO()
            Image.new("RGB", (12, 12), (i * 60, 0, 0)).save(buf, format=name[-3:].replace(
                "jpg", "jpeg"))
            zf.writestr(name, buf.getvalue())
        zf.writestr("dataset.json", json.dumps({"labels": [["3.png", 4], ["x/1.png", 0],
                                                           ["y/2.jpg", 2]]}))
        zf.writestr("readme.txt", "not an image, ignored")
    data = load_zip(path, PrepareOptions(8))
    assert data.labels.tolist() == [4, 0, 2]                  # sorted names: 3.png, x/1, y/2
    assert data.class_names == ("0", "1", "2", "3", "4")
    unlabelled = tmp_path / "plain.zip"
    with zipfile.ZipFile(unlabelled, "w") as zf:
        zf.writestr("a.png", png_bytes(Image.new("L", (8, 8))))
        zf.writestr("dataset.json", json.dumps({"labels": None}))
    assert load_zip(unlabelled, PrepareOptions(8)).labels is None


@pytest.mark.parametrize("member", ["../evil.png", "/etc/evil.png", "a/../../evil.png",
                                    "C:/evil.png", "..\\evil.png"])
def test_zip_with_unsafe_member_names_is_refused(tmp_path, member):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.png", png_bytes(Image.new("L", (8, 8))))
        zf.writestr(member, png_bytes(Image.new("L", (8, 8))))
    with pytest.raises(GanzooError, match="unsafe member name"):
        resolve_data(str(path), PrepareOptions(8), Registry())


def test_zip_with_missing_label_or_damage_is_one_clear_error(tmp_path):
    path = tmp_path / "missing.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.png", png_bytes(Image.new("L", (8, 8))))
        zf.writestr("b.png", png_bytes(Image.new("L", (8, 8))))
        zf.writestr("dataset.json", json.dumps({"labels": [["a.png", 1]]}))
    with pytest.raises(GanzooError, match=r"has no label for 1 of 2 images \(first: b.png\)"):
        load_zip(path, PrepareOptions(8))
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(GanzooError, match="not a readable zip file"):
        resolve_data(str(tmp_path / "broken.zip"), PrepareOptions(8), Registry())


# -- ganzoo data prepare / info / fetch --------------------------------------------------------

def class_folder(root: Path, size: int = 32) -> Path:
    rng = np.random.default_rng(1)
    for cls in ("apples", "pears"):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (size + 8, size, 3), np.uint8)).save(
                root / cls / f"{i}.png")
    (root / "pears" / "broken.png").write_text("not an image")
    return root


def test_data_prepare_writes_a_stylegan2_ada_zip_that_trains(cli, tmp_path):
    src = class_folder(tmp_path / "fruit")
    r = cli("data", "prepare", str(src), "--out", "fruit.zip", "--resolution", "32")
    assert r.code == 0, r.err
    assert f"prepared 10 of 11 images from {src} (skipped 1: not an image x1)" in r.out
    assert "wrote fruit.zip: 10 images, 32x32, 3 channel(s), 2 classes" in r.out
    with zipfile.ZipFile(tmp_path / "fruit.zip") as zf:
        meta = json.loads(zf.read("dataset.json"))
        assert sorted(zf.namelist()) == sorted([member_name(i) for i in range(10)]
                                               + ["dataset.json"])
    assert meta == {"labels": [[member_name(i), i // 5] for i in range(10)],
                    "class_names": ["apples", "pears"]}
    direct = resolve_data(str(src), PrepareOptions(32), Registry())
    back = resolve_data(str(tmp_path / "fruit.zip"), PrepareOptions(32), Registry())
    assert np.array_equal(back.images, direct.images)
    assert np.array_equal(back.labels, direct.labels) and back.class_names == direct.class_names
    from conftest import TINY_DCGAN
    r = cli("train", "dcgan", "--data", "fruit.zip", *TINY_DCGAN, "--kimg", "0.016",
            "--xflip", "--resize-filter", "box", "-q")
    assert r.code == 0, r.err
    config = json.loads(next((tmp_path / "runs").glob("*/config.json")).read_text())
    assert config["data"] == {"name": "fruit", "images": 10}
    assert config["train"]["xflip"] is True and config["train"]["resize_filter"] == "box"


def test_data_info_counts_classes_and_writes_a_preview(cli, tmp_path):
    src = class_folder(tmp_path / "fruit", size=16)
    r = cli("data", "info", str(src), "--resolution", "16", "--channels", "1",
            "--preview", "preview.png")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[1:] == [f"{src}: 10 images, 16x16, greyscale", "classes: 2",
                         "     0  apples                         5",
                         "     1  pears                          5", "wrote preview.png"]
    with Image.open(tmp_path / "preview.png") as img:
        assert img.size == (2 * 16, 12 + 8 * 16)      # a column per class, titled


def test_data_fetch_says_what_it_did_and_errors_are_one_line(cli, tmp_path):
    r = cli("data", "fetch", "shapes")
    assert r.code == 0 and "shapes: nothing to fetch (shapes needs no download)" in r.out
    r = cli("data", "fetch", "no-such-set")
    assert r.code == 1 and r.err.count("\n") == 1 and r.err.startswith("error: ")
    assert "no such folder or data set" in r.err
    for args, fragment in [(("prepare", "shapes", "--out", "x.tar", "--resolution", "8"),
                            "must be a .zip"),
                           (("prepare", "shapes", "--out", "x.zip", "--resolution", "8",
                             "--max-images", "0"), "--max-images must be > 0"),
                           (("info", str(tmp_path)), "no images found under")]:
        r = cli("data", *args)
        assert r.code == 1 and r.err.count("\n") == 1 and fragment in r.err, r.err
    assert not (tmp_path / "x.zip").exists()


def test_preparation_runs_a_pool_of_cpu_count_workers(tmp_path, monkeypatch):
    import ganzoo.data.prepare as prepare
    for i in range(100):
        Image.new("L", (10, 10), i).save(tmp_path / f"{i:03d}.png")
    pools = []
    real_pool = prepare.ProcessPoolExecutor

    def recording_pool(workers, **kwargs):
        pools.append(workers)
        return real_pool(workers, **kwargs)
    monkeypatch.setattr(prepare, "ProcessPoolExecutor", recording_pool)
    monkeypatch.setattr(prepare.os, "cpu_count", lambda: 3)
    files = ImageFiles(tmp_path, tuple(list_images(tmp_path)))
    prepared = prepare_files(files, PrepareOptions(8, channels=1))
    assert pools == [3] and prepared.images[:, 0, 0, 0].tolist() == list(range(100))
    prepare_files(ImageFiles(tmp_path, files.names[:20]), PrepareOptions(8, channels=1))
    assert pools == [3]          # 20 files: decoded in-process, a pool would cost more


def _die(task):
    os._exit(1)


def test_a_worker_that_dies_is_an_error_not_a_hang(tmp_path, monkeypatch):
    import ganzoo.data.prepare as prepare
    for i in range(70):
        Image.new("L", (10, 10), i).save(tmp_path / f"{i:03d}.png")
    monkeypatch.setattr(prepare, "_decode_chunk", _die)   # as if the decoder segfaulted
    files = ImageFiles(tmp_path, tuple(list_images(tmp_path)))
    with pytest.raises(GanzooError, match="a worker process died while preparing images"):
        prepare_files(files, PrepareOptions(8), workers=2)


# -- hostile and huge zips (issue 21, item 4) ---------------------------------------------------

def test_a_label_of_a_billion_is_one_line_not_a_billion_class_names(tmp_path):
    path = tmp_path / "label.zip"                       # 20 KB, as the audit's
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(20):
            zf.writestr(f"{i}.png", png_bytes(Image.new("L", (8, 8), i)))
        zf.writestr("dataset.json", json.dumps(
            {"labels": [[f"{i}.png", 10**9 if i == 7 else 0] for i in range(20)]}))
    assert path.stat().st_size < 20_000
    with pytest.raises(GanzooError, match=r"label 1000000000 of 7.png: at most 100000 "
                                          r"classes") as e:
        load_zip(path, PrepareOptions(8))
    assert "\n" not in str(e.value)


def test_class_names_and_huge_integer_labels_are_capped_too(tmp_path):
    path = tmp_path / "names.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.png", png_bytes(Image.new("L", (8, 8))))
        zf.writestr("dataset.json", json.dumps({"labels": [["a.png", 10**30]]}))
    with pytest.raises(GanzooError, match="at most 100000 classes"):
        load_zip(path, PrepareOptions(8))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.png", png_bytes(Image.new("L", (8, 8))))
        zf.writestr("dataset.json", json.dumps({"labels": [["a.png", 0]],
                                                "class_names": ["x"] * 100_001}))
    with pytest.raises(GanzooError, match=r'"class_names": 100001 names, at most 100000'):
        load_zip(path, PrepareOptions(8))


def test_a_gigabyte_of_spaces_as_dataset_json_is_refused_fast(tmp_path):
    path = tmp_path / "spaces.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.png", png_bytes(Image.new("L", (8, 8))))
        with zf.open("dataset.json", "w", force_zip64=True) as f:   # streamed: 1 MiB at once
            spaces = b" " * (1 << 20)
            for _ in range(1024):
                f.write(spaces)
    assert path.stat().st_size < 2 << 20
    start = time.monotonic()
    with pytest.raises(GanzooError, match=r"dataset.json is 1073741824 bytes; at most "
                                          r"67108864 are read"):
        load_zip(path, PrepareOptions(8))
    assert time.monotonic() - start < 1


def test_dataset_json_is_read_with_a_bound_whatever_its_header_says(tmp_path, monkeypatch):
    import ganzoo.data.zipset as zipset
    path = tmp_path / "lying.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.png", png_bytes(Image.new("L", (8, 8))))
        zf.writestr("dataset.json", b" " * 5000 + b'{"labels": null}')
    monkeypatch.setattr(zipset, "MAX_META_BYTES", 1000)
    # the header would pass: the read itself must stop at the cap
    monkeypatch.setattr(zipset, "_declared_size", lambda info: 10)
    with pytest.raises(GanzooError, match="dataset.json is over 1000 bytes"):
        load_zip(path, PrepareOptions(8))


class _CountingZipFile(zipfile.ZipFile):
    """Appends a line to $COUNT_ZIP_OPENS for every zip opened (forked workers too)."""

    def __init__(self, *args, **kwargs):
        with open(os.environ["COUNT_ZIP_OPENS"], "a") as f:
            f.write(f"{os.getpid()}\n")
        super().__init__(*args, **kwargs)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_zip_of_many_members_is_opened_once_per_worker(tmp_path, monkeypatch, workers):
    import multiprocessing
    if workers > 1 and multiprocessing.get_start_method() != "fork":
        pytest.skip("counting opens in workers needs the fork start method")
    path = tmp_path / "many.zip"
    n = 20_000                  # the audit's 200k took over 5 minutes: an open per 256 names
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.png", png_bytes(Image.new("L", (8, 8))))
        for i in range(n):
            zf.writestr(f"e/{i:06d}.png", b"")
    log = tmp_path / "opens.txt"
    monkeypatch.setenv("COUNT_ZIP_OPENS", str(log))
    monkeypatch.setattr(zipfile, "ZipFile", _CountingZipFile)
    files = ImageFiles(path, ("a.png", *(f"e/{i:06d}.png" for i in range(n))), in_zip=True)
    start = time.monotonic()
    prepared = prepare_files(files, PrepareOptions(8), workers=workers)
    assert prepared.kept == [0] and prepared.reasons() == f"empty file x{n}"
    assert len(log.read_text().splitlines()) == workers
    assert time.monotonic() - start < 60


# -- names, vanishing files, killed parents, Ctrl-C (issue 21, item 5) --------------------------

def test_a_non_utf8_file_name_is_skipped_and_counted(tmp_path, capsys):
    root = tmp_path / "photos"
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        Image.new("L", (8, 8), 100).save(root / cls / "a.png")
    Image.new("L", (8, 8)).save(os.fsencode(root / "cats") + b"/caf\xe9.png")   # Latin-1
    os.mkdir(os.fsencode(root) + b"/\xff")                                       # a class too
    Image.new("L", (8, 8)).save(os.fsencode(root) + b"/\xff/b.png")
    data = resolve_data(str(root), PrepareOptions(8), Registry())
    assert len(data) == 2 and data.class_names == ("cats", "dogs")
    assert data.labels.tolist() == [0, 1]
    assert capsys.readouterr().out.strip() == (
        f"prepared 2 of 4 images from {root} (skipped 2: name not UTF-8 x2)")


def test_files_that_vanish_after_listing_are_skipped_and_counted(tmp_path, capsys,
                                                                 monkeypatch):
    import ganzoo.data.folder as folder
    for i in range(4):
        Image.new("L", (8, 8), i).save(tmp_path / f"{i}.png")

    def list_then_delete(root):
        names = list_images(root)
        (root / "1.png").unlink()            # deleted while the folder is being prepared
        return names
    monkeypatch.setattr(folder, "list_images", list_then_delete)
    data = resolve_data(str(tmp_path), PrepareOptions(8, channels=1), Registry())
    assert data.images[:, 0, 0, 0].tolist() == [0, 2, 3]
    assert capsys.readouterr().out.strip() == (
        f"prepared 3 of 4 images from {tmp_path} (skipped 1: vanished x1)")
    files = ImageFiles(tmp_path, ("0.png", "1.png", "2.png"))
    assert prepare_files(files, PrepareOptions(8), workers=1).skipped == {1: "vanished"}


KILLED_PARENT = """
import os, sys
from pathlib import Path
from ganzoo.data.prepare import ImageFiles, prepare_files
from ganzoo.data.source import PrepareOptions
root = Path(sys.argv[1])
names = tuple(f"{i:03d}.png" for i in range(64))
for name in names:
    os.mkfifo(root / name)    # opening a fifo blocks: the workers wait until they are killed
prepare_files(ImageFiles(root, names), PrepareOptions(8), workers=2)
"""


def _descendants(pid: int) -> set[int]:
    children: dict[int, set[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, set()).add(int(entry))
    found, todo = set(), [pid]
    while todo:
        kids = children.get(todo.pop(), set())
        found |= kids
        todo.extend(kids)
    return found


def _alive(pid: int) -> bool:
    try:                                         # a zombie is dead, just not yet reaped
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_workers_exit_when_the_parent_is_killed(tmp_path, sig):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, str(tmp_path)])
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            workers = _descendants(proc.pid)
        assert len(workers) >= 2, "the preparation never started its workers"
        proc.send_signal(sig)
        proc.wait(10)
        deadline = time.monotonic() + 5
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)], "orphaned workers"
    finally:
        for pid in [proc.pid, *workers]:       # never leave a stuck process behind
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


def test_ctrl_c_during_preparation_exits_130(cli, tmp_path, monkeypatch):
    import ganzoo.data.prepare as prepare
    Image.new("L", (8, 8)).save(tmp_path / "a.png")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(prepare, "prepare_files", interrupted)
    r = cli("data", "prepare", str(tmp_path), "--out", "x.zip", "--resolution", "8")
    assert r.code == 130 and r.err.strip().splitlines()[-1] == "interrupted"
