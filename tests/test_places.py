"""places/<category>: a Places-layout archive with several categories and the official kind
of file list, served from 127.0.0.1 through GANZOO_MIRROR. One category is streamed out
(exactly its listed files), survives a dropped connection and a new invocation by resuming,
and fails loudly on a missing listed file, a wrong checksum or a corrupt member."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, replace

import numpy as np
import pytest
from PIL import Image

from ganzoo.data import download, places
from ganzoo.data.archive import TarReader
from ganzoo.data.places_categories import CATEGORIES, CATEGORIES_TXT
from ganzoo.data.registered import PlacesSource
from ganzoo.data.source import PrepareOptions
from ganzoo.errors import GanzooError
from conftest import TINY_DCGAN
from local_http import FileServer, closed_port
from test_cli_errors import assert_one_line_error

FILELIST = "/places/places365/filelist_places365-standard.tar"
IMAGES = "/places/places365/train_256_places365standard.tar"
LONG_NAME = "b/bakery/shop/" + "unlisted-" * 14 + ".jpg"     # > 100 bytes: a pax header
# The archive's order: categories interleaved, unlisted members among them.
ORDER = [("a/airfield", 1), ("a/airfield", 2), ("c/corridor", 1), ("c/corridor", 2),
         ("b/bakery/shop", 1), ("c/corridor", 3), (LONG_NAME, None), ("b/bakery/shop", 2),
         ("c/corridor", 4), ("c/corridor", 5), ("c/corridor", 99), ("c/corridor", 6),
         ("b/bakery/shop", 3), ("a/airfield", 3), ("a/airfield", 4)]
LISTED = {"/c/corridor": range(1, 7), "/a/airfield": range(1, 5), "/b/bakery/shop": range(1, 4)}


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def member(cat: str, i: int | None) -> str:
    return "data_256/" + (cat if i is None else f"{cat}/{i:08d}.jpg")


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def file_list(extra: str = "") -> bytes:
    train = "".join(f"{cat}/{i:08d}.jpg {CATEGORIES.index(cat)}\n"
                    for cat, ids in LISTED.items() for i in ids) + extra
    return tar_bytes({"categories_places365.txt": CATEGORIES_TXT.encode() + b"\n",
                      "places365_train_standard.txt": train.encode(),
                      "places365_val.txt": b"Places365_val_00000001.jpg 165\n"})


@dataclass
class Served:
    server: FileServer
    images: bytes

    def entry(self, name: str):
        """The TarEntry of a member of the served image archive."""
        return next(e for e in TarReader(io.BytesIO(self.images), "t") if e.name == name)


def serve(monkeypatch, tmp_path, *, list_extra: str = "", images: bytes | None = None):
    monkeypatch.setenv("GANZOO_HOME", str(tmp_path / "home"))
    lists = file_list(list_extra)
    images = images or tar_bytes({member(c, i): jpeg(n) for n, (c, i) in enumerate(ORDER)})
    server = FileServer(files={FILELIST: lists, IMAGES: images}).start()
    monkeypatch.setenv("GANZOO_MIRROR", server.base)
    monkeypatch.setattr(places, "RELEASE", replace(
        places.RELEASE, filelist_md5=hashlib.md5(lists).hexdigest()))
    return Served(server, images)


@pytest.fixture
def served(monkeypatch, tmp_path):
    s = serve(monkeypatch, tmp_path)
    yield s
    s.server.stop()


def extracted(tmp_path) -> set[str]:
    root = tmp_path / "home" / "downloads" / "places365" / "data_256"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


CORRIDOR = {f"c/corridor/{i:08d}.jpg" for i in range(1, 7)}


def test_extracts_exactly_the_listed_files_of_one_category(served, tmp_path, capsys):
    folder = places.fetch_category("places/corridor")
    assert extracted(tmp_path) == CORRIDOR        # not 99 (unlisted), nothing of the others
    assert (folder / "00000003.jpg").read_bytes() == jpeg(5)
    assert "places/corridor: 6 of 6 images extracted" in capsys.readouterr().err
    places.fetch_category("places/corridor")       # already complete: no second download
    assert len(served.server.requests_for(IMAGES)) == 1


def test_category_with_a_subfolder_name_and_pax_headers_around_it(served, tmp_path):
    places.fetch_category("places/bakery/shop")
    assert extracted(tmp_path) == {f"b/bakery/shop/{i:08d}.jpg" for i in range(1, 4)}


def test_dropped_connection_resumes_mid_member_with_range(served, tmp_path, capsys):
    drop = served.entry(member("c/corridor", 5)).offset + 700   # inside a corridor image
    served.server.drop_after[IMAGES] = drop
    places.fetch_category("places/corridor")
    first, second = served.server.requests_for(IMAGES)
    assert first.range is None and second.range == f"bytes={drop}-"
    assert served.server.bytes_sent(IMAGES) < 2 * len(served.images)
    assert extracted(tmp_path) == CORRIDOR
    assert "6 of 6 images" in capsys.readouterr().err


def test_a_new_invocation_resumes_from_the_saved_member_offset(served, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "RETRY_WAITS", ())          # this run gives up at once
    fifth = served.entry(member("c/corridor", 5))
    served.server.drop_after[IMAGES] = fifth.offset + 700
    with pytest.raises(GanzooError, match=r"places/corridor: stopped after 4 of 6 images: "
                                          r".*run the same command again to resume"):
        places.fetch_category("places/corridor")
    state = tmp_path / "home" / "downloads" / "places365" / "state" / "c_corridor.json"
    assert json.loads(state.read_text())["offset"] == fifth.offset   # a member boundary
    places.fetch_category("places/corridor")
    assert served.server.requests_for(IMAGES)[-1].range == f"bytes={fifth.offset}-"
    assert extracted(tmp_path) == CORRIDOR


def test_a_listed_file_missing_from_the_archive_fails_loudly(monkeypatch, tmp_path):
    s = serve(monkeypatch, tmp_path, list_extra="/c/corridor/00000007.jpg 106\n")
    try:
        with pytest.raises(GanzooError) as e:
            places.fetch_category("places/corridor")
    finally:
        s.server.stop()
    assert "places/corridor: only 6 of 7 images extracted" in str(e.value)
    assert "/c/corridor/00000007.jpg" in str(e.value) and "\n" not in str(e.value)


def test_a_wrong_file_list_checksum_fails_loudly_and_extracts_nothing(served, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setattr(places, "RELEASE", replace(places.RELEASE, filelist_md5="0" * 32))
    with pytest.raises(GanzooError, match="filelist_places365-standard.tar failed "
                                          "verification: md5 mismatch"):
        places.fetch_category("places/corridor")
    assert extracted(tmp_path) == set() and not served.server.requests_for(IMAGES)


def test_a_corrupt_member_header_fails_loudly(monkeypatch, tmp_path):
    images = bytearray(tar_bytes({member(c, i): jpeg(n) for n, (c, i) in enumerate(ORDER)}))
    at = next(e for e in TarReader(io.BytesIO(bytes(images)), "t")
              if e.name == member("c/corridor", 4)).offset
    images[at + 3] ^= 0x20                     # one bit of a corridor member's header
    s = serve(monkeypatch, tmp_path, images=bytes(images))
    try:
        with pytest.raises(GanzooError, match=rf"places/corridor: stopped after 3 of 6 images:"
                                              rf" .*bad tar header checksum.* at byte {at}"):
            places.fetch_category("places/corridor")
    finally:
        s.server.stop()


def test_a_listed_name_that_is_a_symlink_is_refused(monkeypatch, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(1, 7):
            info = tarfile.TarInfo(member("c/corridor", i))
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    s = serve(monkeypatch, tmp_path, images=buf.getvalue())
    try:
        with pytest.raises(GanzooError, match="is a symlink, not an image file"):
            places.fetch_category("places/corridor")
    finally:
        s.server.stop()
    assert extracted(tmp_path) == set()


def test_files_put_there_by_hand_are_used_offline(served, tmp_path, monkeypatch):
    root = tmp_path / "home" / "downloads" / "places365"
    root.mkdir(parents=True)
    (root / "filelist_places365-standard.tar").write_bytes(served.server.files[FILELIST])
    (root / "train_256_places365standard.tar").write_bytes(served.images)
    monkeypatch.setenv("GANZOO_MIRROR", f"http://127.0.0.1:{closed_port()}")
    places.fetch_category("places/corridor")
    assert extracted(tmp_path) == CORRIDOR


def test_load_prepares_the_extracted_category(served):
    data = PlacesSource().load("places/corridor", PrepareOptions(resolution=8))
    assert data.images.shape == (6, 3, 8, 8) and data.labels is None
    assert data.name == "places-corridor"


def test_unknown_category_suggests_the_nearest(tmp_path, monkeypatch):
    with pytest.raises(GanzooError, match="did you mean places/corridor"):
        places.category_of("places/coridor")
    assert places.category_of("places/c/corridor") == "/c/corridor"
    assert places.category_of("places/apartment_building/outdoor") == \
        "/a/apartment_building/outdoor"


def test_embedded_categories_are_the_official_file():
    data = CATEGORIES_TXT.encode()
    assert len(data) == 6833 and hashlib.md5(data).hexdigest() == \
        "06c963b85866bd0649f97cb43dd16673"
    assert len(CATEGORIES) == 365 and CATEGORIES[106] == "/c/corridor"


def test_cli_offline_is_one_line_naming_url_and_manual_path(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GANZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GANZOO_MIRROR", f"http://127.0.0.1:{closed_port()}")
    r = cli("train", "dcgan", "--data", "places/corridor", *TINY_DCGAN, "--kimg", "0.016")
    manual = tmp_path / "home" / "downloads" / "places365" / "filelist_places365-standard.tar"
    assert_one_line_error(r, "cannot download http://127.0.0.1:", FILELIST, str(manual),
                          "Connection refused")


def test_cli_category_typo_is_one_line(cli):
    assert_one_line_error(cli("train", "dcgan", "--data", "places/coridor", *TINY_DCGAN),
                          "did you mean places/corridor")
