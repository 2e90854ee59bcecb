"""Places365-Standard, one category at a time, streamed out of the 24 GB training archive.

The official file list names every training image (``/c/corridor/00000001.jpg 106``), so
the names and the count a category must have are known before a byte of the image archive
is read. The archive is then streamed member by member and never stored; only the listed
files of that category are written; the byte offset of the next member header is saved in a
small JSON state file, so a dropped connection resumes with HTTP Range and a new invocation
carries on where the last one stopped. The outcome is reported as "N of M images", and a
listed image that the archive lacks is an error, never a silent loss.
"""
from __future__ import annotations

import difflib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

from ganzoo.atomic import atomic_write_text
from ganzoo.data.archive import TarReader, extract, member_path, write_file
from ganzoo.data.download import (Progress, download_file, downloads_dir, mirrored,
                                  open_url)
from ganzoo.data.places_categories import CATEGORIES
from ganzoo.errors import GanzooError

_BASE = "http://data.csail.mit.edu/places/places365/"
STATE_EVERY = 64 << 20      # save the resume offset at least every 64 MB of archive read
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class PlacesRelease:
    """Where the files come from (GANZOO_MIRROR applies to both) and what is known of them.
    The image archive is the 256x256 one the seed report used; its md5 covers the whole
    24 GB, which a one-category stream never reads, so images are checked against the list."""

    filelist_url: str = _BASE + "filelist_places365-standard.tar"
    filelist_md5: str | None = "35a0585fee1fa656440f3ab298f8479c"
    images_url: str = _BASE + "train_256_places365standard.tar"
    train_list: str = "places365_train_standard.txt"
    categories_list: str = "categories_places365.txt"


RELEASE = PlacesRelease()


def places_dir() -> Path:
    return downloads_dir() / "places365"


def category_of(spec: str) -> str:
    """``places/corridor`` (or ``places/c/corridor``) -> ``/c/corridor``."""
    name = spec.partition("/")[2].strip("/")
    if "/" + name in CATEGORIES:
        return "/" + name
    short = {c[3:]: c for c in CATEGORIES}
    if name in short:
        return short[name]
    hint = difflib.get_close_matches(name, short, n=3, cutoff=0.6)
    did = f"did you mean {' or '.join('places/' + h for h in hint)}? " if hint else ""
    raise GanzooError(f"--data {spec}: no such Places365 category; {did}(365 categories, "
                      f"e.g. places/corridor, places/apartment_building/outdoor)")


def category_dir(category: str) -> Path:
    return places_dir() / "data_256" / category.strip("/")


def fetch_category(spec: str, release: PlacesRelease | None = None) -> Path:
    """Make sure every listed image of the category is on disk; return its folder."""
    release = release or RELEASE
    category = category_of(spec)
    expected = expected_files(file_lists(release), category, release)
    target = category_dir(category)
    extract_category(category, expected, target, release)
    return target


def file_lists(release: PlacesRelease) -> Path:
    """The folder holding the official category and training lists (downloaded, checked
    and extracted once)."""
    folder = places_dir() / "filelist"
    wanted = {release.categories_list, release.train_list}
    if all((folder / n).exists() for n in wanted):
        return folder
    tar = download_file(release.filelist_url, places_dir() / _basename(release.filelist_url),
                        md5=release.filelist_md5, desc="places365 file list")
    extract(tar, folder, select=lambda rel: str(rel) in wanted)
    missing = sorted(n for n in wanted if not (folder / n).exists())
    if missing:
        raise GanzooError(f"{tar}: has no {', '.join(missing)}")
    return folder


def expected_files(folder: Path, category: str, release: PlacesRelease) -> list[str]:
    """The list paths (``/c/corridor/00000001.jpg``) of the category's training images."""
    label = "places/" + category[3:]
    listed = {line.split()[0] for line in
              (folder / release.categories_list).read_text().splitlines() if line.strip()}
    if category not in listed:
        raise GanzooError(f"{label}: not in the official {release.categories_list}")
    prefix, names = category + "/", []
    with open(folder / release.train_list, encoding="utf-8") as f:
        for line in f:
            if line.startswith(prefix):
                path = line.split()[0]
                if not _SAFE_NAME.fullmatch(path[len(prefix):]):
                    raise GanzooError(f"{release.train_list}: unexpected entry {path!r}")
                names.append(path)
    if not names:
        raise GanzooError(f"{label}: {release.train_list} lists no images for it")
    return names


def extract_category(category: str, expected: list[str], target: Path,
                     release: PlacesRelease) -> int:
    """Stream the image archive until every expected file is in ``target``."""
    label = "places/" + category[3:]
    target.mkdir(parents=True, exist_ok=True)
    missing = {n for n in expected if not (target / _basename(n)).exists()}
    state = _State(places_dir() / "state" / (category.strip("/").replace("/", "_") + ".json"),
                   release.images_url)
    # resume where the last run stopped; if files before that point are gone, start over once
    for start in dict.fromkeys([state.offset, 0] if missing else []):
        try:
            _stream_category(label, release, start, target, missing, state, len(expected))
        except GanzooError as e:        # say which category, and how far it got
            message = str(e).removeprefix(label + ": ")
            raise GanzooError(f"{label}: stopped after {len(expected) - len(missing)} of "
                              f"{len(expected)} images: {message}") from None
        if not missing:
            break
    got = len(expected) - len(missing)
    if missing:
        raise GanzooError(f"{label}: only {got} of {len(expected)} images extracted; "
                          f"{len(missing)} listed file(s) are not in the archive "
                          f"{mirrored(release.images_url)}, e.g. {min(missing)}")
    print(f"{label}: {got} of {len(expected)} images extracted ({target})", file=sys.stderr)
    return got


def _stream_category(label: str, release: PlacesRelease, start: int, target: Path,
                     missing: set[str], state: _State, total: int) -> None:
    local = places_dir() / _basename(release.images_url)   # a copy fetched by hand, if any
    source, archive = _open_images(release, start, local)
    done_until = start       # every member before this offset has been dealt with
    progress = Progress(label, getattr(source, "total", None), start, draw_only=True)
    with source:
        try:
            reader = TarReader(source, archive, start)
            for entry in reader:
                member_path(archive, entry.name)       # a hostile name is an error anyway
                key = _list_key(entry.name, missing)
                if key:
                    if entry.kind != "file":
                        raise GanzooError(f"{label}: {entry.name} in {archive} is a "
                                          f"{entry.kind}, not an image file")
                    write_file(target, PurePosixPath(_basename(key)), reader.data(entry),
                               archive)
                    missing.discard(key)
                done_until = entry.end
                if not missing:
                    break
                if done_until - state.offset >= STATE_EVERY:
                    state.save(done_until)
                progress.update(reader.pos, f"{total - len(missing)} of {total} images")
        finally:
            state.save(done_until)
            progress.finish(done_until)


def _open_images(release: PlacesRelease, start: int, local: Path) -> tuple[BinaryIO, str]:
    if local.exists():
        f = open(local, "rb")
        f.seek(start)
        return f, str(local)
    return open_url(release.images_url, start, manual_path=local), mirrored(release.images_url)


def _list_key(member: str, wanted: set[str]) -> str | None:
    """The file-list name (``/c/corridor/00000001.jpg``) of an archive member, if wanted.
    The list names images relative to the archive's top folder (``data_256/``); a copy
    packed without that folder is matched too."""
    parts = [p for p in member.replace("\\", "/").split("/") if p not in ("", ".")]
    for key in ("/" + "/".join(parts[1:]), "/" + "/".join(parts)):
        if key in wanted:
            return key
    return None


def _basename(path_or_url: str) -> str:
    return PurePosixPath(urlsplit(path_or_url).path).name


class _State:
    """The resume point of one category's stream: the offset of a member header."""

    def __init__(self, path: Path, url: str):
        self.path, self.url, self.offset = path, url, 0
        try:
            saved = json.loads(path.read_text())
            if saved.get("url") == url and isinstance(saved.get("offset"), int):
                self.offset = saved["offset"]
        except (OSError, ValueError):
            pass      # no state yet, or an unreadable one: start from the beginning

    def save(self, offset: int) -> None:
        self.offset = offset
        atomic_write_text(self.path, json.dumps({"url": self.url, "offset": offset}))
