"""download_file: resume after a dropped connection, verification, offline and manual files,
GANZOO_MIRROR; and the array data sets (mnist, cifar10) read from a mirror. No internet:
everything is served by a local HTTP server on 127.0.0.1."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import tarfile

import numpy as np
import pytest

from ganzoo.data import download, registered
from ganzoo.data.download import download_file, mirrored
from ganzoo.data.source import PrepareOptions
from ganzoo.errors import GanzooError
from local_http import FileServer, closed_port

ORIGIN = "https://files.example.org"    # never contacted: GANZOO_MIRROR replaces it
PATH = "/sets/blob.bin"
BLOB = os.urandom(300_000)
SHA = hashlib.sha256(BLOB).hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("GANZOO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def server(monkeypatch):
    srv = FileServer(files={PATH: BLOB}).start()
    monkeypatch.setenv("GANZOO_MIRROR", srv.base)
    yield srv
    srv.stop()


def test_mirror_replaces_scheme_and_host_keeping_the_path(monkeypatch):
    monkeypatch.setenv("GANZOO_MIRROR", "http://10.0.0.5:8080/mirror/")
    assert mirrored("https://a.example/x/y.tgz?v=1") == "http://10.0.0.5:8080/mirror/x/y.tgz?v=1"
    monkeypatch.delenv("GANZOO_MIRROR")
    assert mirrored("https://a.example/x/y.tgz") == "https://a.example/x/y.tgz"


def test_download_verifies_and_lands_under_ganzoo_home(home, server, capsys):
    path = download_file(ORIGIN + PATH, "t/blob.bin", sha256=SHA)
    assert path == home / "downloads" / "t" / "blob.bin"
    assert path.read_bytes() == BLOB
    assert not path.with_name("blob.bin.part").exists()
    assert "downloaded" in capsys.readouterr().err        # the final progress line


def test_dropped_connection_resumes_with_range_not_restart(home, server, capsys):
    server.drop_after[PATH] = 100_000
    path = download_file(ORIGIN + PATH, "t/blob.bin", sha256=SHA, size=len(BLOB))
    assert path.read_bytes() == BLOB
    first, second = server.requests_for(PATH)
    assert first.range is None and first.sent == 100_000
    assert second.range == "bytes=100000-" and second.status == 206
    assert server.bytes_sent(PATH) < 2 * len(BLOB)        # resumed, not restarted
    assert "resuming" in capsys.readouterr().err


def test_a_part_file_from_an_earlier_run_is_resumed(home, server):
    part = home / "downloads" / "t" / "blob.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(BLOB[:123_456])
    download_file(ORIGIN + PATH, "t/blob.bin", sha256=SHA)
    (req,) = server.requests_for(PATH)
    assert req.range == "bytes=123456-" and req.sent == len(BLOB) - 123_456


def test_server_ignoring_range_restarts_from_zero_and_says_so(home, server, capsys):
    server.ranges = False
    part = home / "downloads" / "t" / "blob.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes that are not a prefix of the file")
    assert download_file(ORIGIN + PATH, "t/blob.bin", sha256=SHA).read_bytes() == BLOB
    assert "restarting from zero" in capsys.readouterr().err


def test_sha256_mismatch_is_an_error_and_leaves_no_file(home, server):
    with pytest.raises(GanzooError, match="sha256 mismatch") as e:
        download_file(ORIGIN + PATH, "t/blob.bin", sha256="0" * 64)
    assert "\n" not in str(e.value)
    assert not list((home / "downloads" / "t").iterdir())   # neither the file nor .part


def test_size_mismatch_is_an_error(home, server):
    with pytest.raises(GanzooError, match="size mismatch"):
        download_file(ORIGIN + PATH, "t/blob.bin", size=len(BLOB) + 1)


def test_offline_names_url_and_manual_path_then_uses_the_manual_file(home, monkeypatch):
    monkeypatch.setenv("GANZOO_MIRROR", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(GanzooError) as e:
        download_file(ORIGIN + PATH, "t/blob.bin", sha256=SHA)
    manual = home / "downloads" / "t" / "blob.bin"
    message = str(e.value)
    assert "\n" not in message
    assert mirrored(ORIGIN + PATH) in message and str(manual) in message
    assert "Connection refused" in message
    manual.write_bytes(BLOB)                              # the user puts it there by hand
    assert download_file(ORIGIN + PATH, "t/blob.bin", sha256=SHA) == manual


def test_a_bad_manual_file_is_refused(home, monkeypatch):
    monkeypatch.setenv("GANZOO_MIRROR", f"http://127.0.0.1:{closed_port()}")
    manual = home / "downloads" / "t" / "blob.bin"
    manual.parent.mkdir(parents=True)
    manual.write_bytes(b"not it")
    with pytest.raises(GanzooError, match="sha256 mismatch.*delete it"):
        download_file(ORIGIN + PATH, "t/blob.bin", sha256=SHA)


def test_404_names_url_and_manual_path(home, server):
    with pytest.raises(GanzooError, match=r"HTTP 404.*put it at .*missing\.bin"):
        download_file(ORIGIN + "/no/missing.bin", "t/missing.bin")


def test_gives_up_after_repeated_drops_and_keeps_the_part(home, server, monkeypatch):
    monkeypatch.setattr(download, "RETRY_WAITS", ())
    server.drop_after[PATH] = 50_000
    with pytest.raises(GanzooError, match="run the same command again to resume"):
        download_file(ORIGIN + PATH, "t/blob.bin", sha256=SHA)
    assert (home / "downloads" / "t" / "blob.bin.part").stat().st_size == 50_000
    download_file(ORIGIN + PATH, "t/blob.bin", sha256=SHA)   # the next run resumes
    assert server.requests_for(PATH)[-1].range == "bytes=50000-"


# ----------------------------------------------------------- array data sets from a mirror

def _idx(array: np.ndarray) -> bytes:
    header = struct.pack(">4B", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                   *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def _serve(server, url: str, data: bytes) -> registered.Remote:
    from urllib.parse import urlsplit
    server.files[urlsplit(url).path] = data
    return registered.Remote(url, sha256=hashlib.sha256(data).hexdigest())


def test_mnist_format_set_is_read_and_resized(home, server):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (7, 28, 28)), np.arange(7) % 10
    source = registered.mnist()
    source.images = _serve(server, source.images.url, _idx(images))
    source.labels = _serve(server, source.labels.url, _idx(labels))
    data = source.load("mnist", PrepareOptions(resolution=32, channels=1))
    assert data.images.shape == (7, 1, 32, 32) and list(data.labels) == list(labels)
    assert data.class_names[3] == "3"
    native = source.load("mnist", PrepareOptions(resolution=28, channels=1))
    assert np.array_equal(native.images[:, 0], images)
    assert source.load("mnist", PrepareOptions(resolution=32)).images.shape == (7, 3, 32, 32)


def test_cifar10_binary_batches_are_read_without_pickle(home, server):
    rng = np.random.default_rng(1)
    records = rng.integers(0, 256, (5, 4, 3073)).astype(np.uint8)
    records[..., 0] %= 10
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        members = {f"data_batch_{i + 1}.bin": records[i].tobytes() for i in range(5)}
        members["batches.meta.txt"] = "\n".join(
            "airplane automobile bird cat deer dog frog horse ship truck".split()).encode()
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    source = registered.Cifar10Source()
    source.archive = _serve(server, source.archive.url, buf.getvalue())
    data = source.load("cifar10", PrepareOptions(resolution=32))
    flat = records.reshape(-1, 3073)
    assert data.images.shape == (20, 3, 32, 32)
    assert np.array_equal(data.images.reshape(20, -1), flat[:, 1:])
    assert list(data.labels) == list(flat[:, 0]) and data.class_names[9] == "truck"


def test_flowers102_is_laid_out_by_class_from_imagelabels_mat(home, server):
    from PIL import Image
    from scipy.io import savemat
    labels = [1, 2, 1, 3, 2]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i in range(1, 6):
            jpg = io.BytesIO()
            Image.new("RGB", (20, 12), (40 * i, 0, 0)).save(jpg, "JPEG")
            info = tarfile.TarInfo(f"jpg/image_{i:05d}.jpg")
            info.size = len(jpg.getvalue())
            tar.addfile(info, io.BytesIO(jpg.getvalue()))
    mat = io.BytesIO()
    savemat(mat, {"labels": np.array([labels], np.uint8)})
    source = registered.Flowers102Source()
    source.images = _serve(server, source.images.url, buf.getvalue())
    source.labels = _serve(server, source.labels.url, mat.getvalue())
    data = source.load("flowers102", PrepareOptions(resolution=8))
    assert data.images.shape == (5, 3, 8, 8) and data.class_names == ("1", "2", "3")
    assert sorted(data.labels.tolist()) == sorted(label - 1 for label in labels)
    by_class = home / "downloads" / "flowers102" / "by-class"
    assert (by_class / "003" / "image_00004.jpg").exists()
    assert not (home / "downloads" / "flowers102" / "extract").exists()


# --------------------------------------------------- a server that sends more than the file

@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-length"])
def test_a_server_sending_more_than_the_known_size_is_stopped(home, server, declared):
    server.oversend[PATH] = 200 << 20       # the audit's 210 MB for a known 9.9 MB file
    if not declared:
        server.no_length.add(PATH)          # nothing to refuse up front: stop while reading
    with pytest.raises(GanzooError, match=rf"{len(BLOB)} bytes") as e:
        download_file(ORIGIN + PATH, "t/blob.bin", sha256=SHA, size=len(BLOB))
    assert "\n" not in str(e.value)
    assert server.bytes_sent(PATH) < len(BLOB) + (32 << 20)   # socket buffers, no more
    assert not list((home / "downloads" / "t").iterdir())     # over-long: nothing kept
