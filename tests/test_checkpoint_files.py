"""Checkpoint files that are damaged, foreign or incomplete: one line saying what is wrong."""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from ganzoo.checkpoint import checkpoints_of


@pytest.fixture
def checkpoint(trained_run, tmp_path):
    path = tmp_path / "ckpt.pt"
    shutil.copy(checkpoints_of(trained_run)[-1], path)
    return path


def one_error_line(result) -> str:
    lines = result.err.strip().splitlines()
    assert result.code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "internal error" not in lines[0] and "Traceback" not in result.err
    return lines[0]


def _largest_tensor_record(path) -> zipfile.ZipInfo:
    with zipfile.ZipFile(path) as archive:
        return max((i for i in archive.infolist() if "/data/" in i.filename),
                   key=lambda i: i.file_size)


def test_a_flipped_byte_in_tensor_data_is_caught(cli, checkpoint):
    info = _largest_tensor_record(checkpoint)
    with open(checkpoint, "r+b") as f:      # the record's data follow its local header
        f.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(f.read(2), "little") for _ in range(2))
        target = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        f.seek(target)
        byte = f.read(1)
        f.seek(target)
        f.write(bytes([byte[0] ^ 0x10]))
    line = one_error_line(cli("generate", "--checkpoint", str(checkpoint)))
    assert "corrupt" in line and "CRC" in line


@pytest.mark.parametrize("content,what", [
    (os.urandom(2048), "binary data"),
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "PNG image"),
    (b'{"architecture": "dcgan"}', "JSON text"),
    (b"", "empty"),
])
def test_files_that_are_not_checkpoints_say_what_they_are(cli, tmp_path, content, what):
    path = tmp_path / "thing.pt"
    path.write_bytes(content)
    line = one_error_line(cli("generate", "--checkpoint", str(path)))
    assert what in line and "--trust" not in line


@pytest.mark.parametrize("damage", ["drop_state", "state_is_list", "progress_is_str",
                                    "bad_progress_key"])
def test_missing_keys_or_wrong_types_are_one_line(cli, checkpoint, damage):
    data = torch.load(checkpoint, weights_only=True)
    if damage == "drop_state":
        del data["state"]
    elif damage == "state_is_list":
        data["state"] = [1, 2]
    elif damage == "progress_is_str":
        data["progress"] = "10"
    else:
        data["progress"] = {"kimages": 3}
    torch.save(data, checkpoint)
    line = one_error_line(cli("generate", "--checkpoint", str(checkpoint)))
    assert "damaged" in line


def test_init_from_a_checkpoint_without_weights_is_refused(cli, checkpoint, tmp_path):
    from conftest import TINY_DCGAN as TINY_ARGS
    data = torch.load(checkpoint, weights_only=True)
    data["state"] = {k: ({} if isinstance(v, dict) else v) for k, v in data["state"].items()}
    torch.save(data, checkpoint)
    result = cli("train", "dcgan", "--data", "shapes", *TINY_ARGS, "--kimg", "0.016",
                 "--init", str(checkpoint), "--out", str(tmp_path / "runs"))
    line = one_error_line(result)
    assert "no network weights" in line
    assert not any((tmp_path / "runs").glob("*/checkpoints/*.pt"))


# -- a checkpoint written by main at 273fae7 (before issues 17-21) ------------------------------

OLD_MAIN = Path(__file__).parent / "fixtures" / "main-273fae7"


def test_a_checkpoint_of_an_earlier_main_loads_and_generates_the_same():
    from ganzoo.checkpoint import load_model
    model = load_model(OLD_MAIN / "dcgan-ckpt-0000000064.pt").model
    expected = torch.load(OLD_MAIN / "dcgan-expected.pt", weights_only=True)
    assert torch.equal(model.generate(2, seed=7), expected["seed7"])


def test_a_checkpoint_of_an_earlier_main_resumes(cli, tmp_path):
    from conftest import resume_copy
    from ganzoo.checkpoint import read_checkpoint
    last = resume_copy(cli, tmp_path, OLD_MAIN / "dcgan-ckpt-0000000064.pt", "dcgan", "0.096")
    assert read_checkpoint(last)["progress"]["images"] == 96


def test_checkpoint_dataclass_round_trip_and_the_unversioned_migration(checkpoint, cli):
    from ganzoo.checkpoint import FORMAT_VERSION, Checkpoint, open_checkpoint
    typed = open_checkpoint(checkpoint)
    assert typed.architecture == "dcgan" and typed.progress.images > 0
    again = Checkpoint.from_dict(typed.to_dict())
    assert again.to_dict().keys() == typed.to_dict().keys() and again.progress == typed.progress
    data = torch.load(checkpoint, weights_only=True)
    del data["format_version"]            # as written before checkpoints carried a version
    torch.save(data, checkpoint)
    assert open_checkpoint(checkpoint).to_dict()["format_version"] == FORMAT_VERSION
    assert cli("generate", "--checkpoint", str(checkpoint), "--seeds", "0").code == 0
