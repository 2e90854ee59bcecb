"""Archives are checked member by member before anything is written, and nothing ever lands
outside the target: "../" members, absolute and drive-letter paths, symlinks, hardlinks and
devices are refused; corrupt or truncated tars fail loudly instead of ending early."""
from __future__ import annotations

import contextlib
import gzip
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from ganzoo.atomic import atomic_write_text
from ganzoo.data.archive import TarReader, extract, extract_tar_stream, read_tar_members
from ganzoo.errors import GanzooError

LONG = "deep/" + "x" * 120 + "/name-longer-than-the-100-byte-ustar-field.txt"


class Special(tuple):
    """A member that is not a regular file: Special((tarfile type, linkname))."""


def make_tar(path: Path, members: list[tuple], fmt=tarfile.PAX_FORMAT, mode="w") -> Path:
    """members: (name, bytes) for files, or (name, Special((type, linkname)))."""
    with tarfile.open(path, mode, format=fmt) as tar:
        for name, what in members:
            info = tarfile.TarInfo(name)
            if isinstance(what, Special):
                info.type, info.linkname = what
                tar.addfile(info)
            else:
                info.size = len(what)
                tar.addfile(info, io.BytesIO(what))
    return path


def make_zip(path: Path, members: list[tuple[str, bytes, int]]) -> Path:
    """members: (name, bytes, unix mode or 0)."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            z.writestr(info, data)
    return path


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def box(tmp_path) -> Path:
    """A folder holding the archive and the target; after a refusal it must hold nothing
    new but the (empty) target."""
    return tmp_path


BAD_TAR = {
    "dotdot": [("ok.txt", b"fine"), ("../evil.txt", b"escaped")],
    "dotdot-inside": [("a/../../evil.txt", b"escaped")],
    "absolute": [("ok.txt", b"fine"), ("/tmp/evil.txt", b"escaped")],
    "drive-letter": [("C:/evil.txt", b"escaped")],
    "backslash-dotdot": [("..\\evil.txt", b"escaped")],
    "symlink": [("link", Special((tarfile.SYMTYPE, "../.."))), ("link/evil.txt", b"through the link")],
    "hardlink": [("hard", Special((tarfile.LNKTYPE, "/etc/passwd")))],
    "fifo": [("pipe", Special((tarfile.FIFOTYPE, "")))],
    "device": [("dev", Special((tarfile.CHRTYPE, "")))],
}


@pytest.mark.parametrize("case", sorted(BAD_TAR))
@pytest.mark.parametrize("gz", [False, True], ids=["tar", "tgz"])
def test_hostile_tar_is_refused_and_nothing_is_written(box, case, gz):
    archive = make_tar(box / ("bad.tgz" if gz else "bad.tar"), BAD_TAR[case],
                       mode="w:gz" if gz else "w")
    target = box / "out"
    with pytest.raises(GanzooError, match="refusing member") as e:
        extract(archive, target)
    assert str(archive) in str(e.value) and "\n" not in str(e.value)
    assert files_under(box) == {archive.name}        # not even "ok.txt", nothing outside
    assert list(target.iterdir()) == []               # the staging folder is gone too


BAD_ZIP = {
    "dotdot": [("ok.txt", b"fine", 0), ("../evil.txt", b"escaped", 0)],
    "absolute": [("/tmp/evil.txt", b"escaped", 0)],
    "drive-letter": [("C:\\evil.txt", b"escaped", 0)],
    "symlink": [("link", b"/etc", stat.S_IFLNK | 0o777)],
    "fifo": [("pipe", b"", stat.S_IFIFO | 0o644)],
}


@pytest.mark.parametrize("case", sorted(BAD_ZIP))
def test_hostile_zip_is_refused_and_nothing_is_written(box, case):
    archive = make_zip(box / "bad.zip", BAD_ZIP[case])
    with pytest.raises(GanzooError, match="refusing member"):
        extract(archive, box / "out")
    assert files_under(box) == {"bad.zip"}


def test_a_symlinked_folder_in_the_target_cannot_redirect_writes(box):
    outside = box / "outside"
    outside.mkdir()
    target = box / "out"
    target.mkdir()
    (target / "sub").symlink_to(outside)               # planted by someone else
    archive = make_tar(box / "a.tar", [("sub/evil.txt", b"escaped")])
    with pytest.raises(GanzooError, match="outside"):
        extract(archive, target)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_good_tar_extracts_with_long_names(box, fmt):
    members = [("top/a.txt", b"A" * 700), ("top/empty.txt", b""), ("top/sub", Special((tarfile.DIRTYPE, "")))]
    if fmt != tarfile.USTAR_FORMAT:
        members.append((LONG, b"long"))
    archive = make_tar(box / "good.tar", members, fmt=fmt)
    written = extract(archive, box / "out")
    assert (box / "out" / "top" / "a.txt").read_bytes() == b"A" * 700
    assert (box / "out" / "top" / "empty.txt").read_bytes() == b""
    if fmt != tarfile.USTAR_FORMAT:
        assert (box / "out" / LONG).read_bytes() == b"long"
    assert len(written) == len(members) - 1
    assert not [p for p in (box / "out").iterdir() if p.name.startswith(".")]


def test_good_zip_extracts_with_select(box):
    archive = make_zip(box / "good.zip", [("d/a.png", b"a", 0o100644), ("d/b.txt", b"b", 0),
                                          ("d/", b"", 0)])
    written = extract(archive, box / "out", select=lambda rel: rel.suffix == ".png")
    assert written == [PurePosixPath("d/a.png")]
    assert files_under(box / "out") == {"d/a.png"}


def test_corrupt_header_fails_loudly_where_tarfile_stops_quietly(box):
    archive = make_tar(box / "c.tar", [(f"f{i}.txt", b"x" * 100) for i in range(3)],
                       fmt=tarfile.USTAR_FORMAT)
    raw = bytearray(archive.read_bytes())
    raw[1024 + 5] ^= 0xFF                      # the name of the second member's header
    archive.write_bytes(bytes(raw))
    with pytest.raises(GanzooError, match="bad tar header checksum .* at byte 1024"):
        extract(archive, box / "out")
    assert files_under(box / "out") == set()


def test_truncated_tar_fails_loudly(box):
    archive = make_tar(box / "t.tar", [("a.txt", b"a" * 2000), ("b.txt", b"b" * 2000)])
    data = archive.read_bytes()
    for cut in (len(data) // 2, 3 * 512):      # mid-data, and at a member boundary
        archive.write_bytes(data[:cut])
        with pytest.raises(GanzooError, match="ends early"):
            extract(archive, box / "out")


def test_not_an_archive(box):
    junk = box / "junk.tar"
    junk.write_bytes(b"hello world" * 100)
    with pytest.raises(GanzooError, match="junk.tar"):
        extract(junk, box / "out")


class _Pipe(io.RawIOBase):
    """A non-seekable stream that hands out at most 777 bytes per read, like a socket."""

    def __init__(self, data: bytes):
        self.buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.buf.read(min(n, 777) if n >= 0 else 777)


def test_streamed_tar_gz_from_a_pipe(box):
    plain = make_tar(box / "s.tar", [("s/a.txt", b"a" * 5000), (LONG, b"long")])
    stream = _Pipe(gzip.compress(plain.read_bytes()))
    written = extract_tar_stream(gzip.GzipFile(fileobj=stream), box / "out", "s.tar.gz")
    assert len(written) == 2 and (box / "out" / LONG).read_bytes() == b"long"


def test_reading_restarts_at_a_member_boundary_even_before_pax_headers(box):
    archive = make_tar(box / "r.tar", [("a.txt", b"a" * 600), (LONG, b"long"),
                                       ("c.txt", b"c")])
    data = archive.read_bytes()
    entries = list(TarReader(io.BytesIO(data), "r.tar"))
    assert [e.name for e in entries] == ["a.txt", LONG, "c.txt"]
    assert entries[1].offset == entries[0].end        # the pax header belongs to LONG
    resumed = io.BytesIO(data[entries[0].end:])
    reader = TarReader(resumed, "r.tar", offset=entries[0].end)
    got = [(e.name, b"".join(reader.data(e)), e.end) for e in reader]
    assert got == [(LONG, b"long", entries[1].end), ("c.txt", b"c", entries[2].end)]


def test_read_tar_members_reads_without_extracting(box):
    archive = make_tar(box / "m.tgz", [("x/a.bin", b"A"), ("x/b.bin", b"B")], mode="w:gz")
    assert read_tar_members(archive, ["x/b.bin"]) == {"x/b.bin": b"B"}
    with pytest.raises(GanzooError, match="missing: x/c.bin"):
        read_tar_members(archive, ["x/c.bin"])
    assert files_under(box) == {"m.tgz"}


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_atomic_outputs_get_the_mode_a_plain_open_would(box, mask):
    want = 0o666 & ~mask                         # 0644 under the usual umask, not mkstemp's 0600
    with umask(mask):
        atomic_write_text(box / "new.txt", "x")
        archive = make_zip(box / "m.zip", [("d/a.txt", b"a", 0o100644)])
        extract(archive, box / "out")
        plain = box / "plain.txt"
        plain.write_text("x")
    for path in (box / "new.txt", box / "out" / "d" / "a.txt", plain):
        assert stat.S_IMODE(path.stat().st_mode) == want, path


def test_an_atomic_rewrite_keeps_the_files_mode_as_open_does(box):
    path = box / "private.txt"
    path.write_text("old")
    path.chmod(0o600)                            # the user's choice survives a rewrite
    with umask(0o022):
        atomic_write_text(path, "new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "new"
