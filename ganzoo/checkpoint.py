"""Run directories and checkpoints: atomic writes, keep-last-K, safe loading, full-state resume.

A checkpoint is a ``torch.save`` of plain data only (tensors, numbers, strings, lists, dicts),
so it loads with ``torch.load(weights_only=True)``: opening a checkpoint never runs code from
it. A file that needs pickle code execution is refused unless the user passes ``--trust``.
"""
from __future__ import annotations

import dataclasses
import json
import pickle
import random
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import ganzoo
from ganzoo.architecture import Architecture, DataSpec
from ganzoo.atomic import atomic_write
from ganzoo.errors import GanzooError
from ganzoo.importers import import_pickle
from ganzoo.safe_pickle import is_plain_pickle

FORMAT = "ganzoo-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
_RUN_NAME = re.compile(r"^(\d{5})-")
_CKPT_NAME = re.compile(r"^ckpt-(\d{10})\.pt$")


# -- run directories --------------------------------------------------------------------------

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "data"


def list_runs(out: Path) -> list[Path]:
    """Run directories under ``out``, oldest first (by their numeric id)."""
    if not out.is_dir():
        return []
    runs = [p for p in out.iterdir() if p.is_dir() and _RUN_NAME.match(p.name)]
    return sorted(runs, key=lambda p: (int(_RUN_NAME.match(p.name).group(1)), p.name))


def new_run_dir(out: Path, arch: str, data_name: str) -> Path:
    """``out/NNNNN-ARCH-DATA``, with NNNNN one more than the largest id there."""
    out.mkdir(parents=True, exist_ok=True)
    while True:
        runs = list_runs(out)
        next_id = int(_RUN_NAME.match(runs[-1].name).group(1)) + 1 if runs else 0
        path = out / f"{next_id:05d}-{arch}-{_slug(data_name)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:  # another process took this id; take the next one
            continue


def run_architecture(run: Path) -> str | None:
    """The architecture a run trains, from its config.json."""
    try:
        return json.loads((run / "config.json").read_text())["architecture"]
    except (OSError, ValueError, KeyError):
        return None


def checkpoints_of(run: Path) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    d = run / CHECKPOINT_DIR
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if _CKPT_NAME.match(p.name))


def checkpoint_path(run: Path, images: int) -> Path:
    return run / CHECKPOINT_DIR / f"ckpt-{images:010d}.pt"


def run_of_checkpoint(path: Path) -> Path | None:
    """The run directory a checkpoint lives in, if it lives in one."""
    run = path.resolve().parent.parent
    return run if path.parent.name == CHECKPOINT_DIR and (run / "config.json").exists() else None


def resolve_checkpoint(ref: str, out: Path, arch: str | None = None) -> Path:
    """Find the checkpoint meant by ``latest``, a run directory, a run id, or a file."""
    if ref == "latest":
        runs = [r for r in list_runs(out) if checkpoints_of(r)
                and (arch is None or run_architecture(r) == arch)]
        if not runs:
            which = f"{arch} run" if arch else "run"
            raise GanzooError(f"no {which} with a checkpoint under {out}/")
        return checkpoints_of(runs[-1])[-1]
    path = Path(ref).expanduser()
    if not path.exists():
        matches = [r for r in list_runs(out) if r.name == ref or r.name.startswith(ref + "-")]
        if len(matches) != 1:
            raise GanzooError(f"no such run or checkpoint: {ref}")
        path = matches[0]
    if path.is_dir():
        ckpts = checkpoints_of(path)
        if not ckpts:
            raise GanzooError(f"run {path} has no checkpoint yet")
        return ckpts[-1]
    return path


def prune_checkpoints(run: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints, and temp files of killed writers."""
    for old in checkpoints_of(run)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)


def remove_stale_temp_files(run: Path) -> None:
    d = run / CHECKPOINT_DIR
    for tmp in d.glob(".ckpt-*.tmp*") if d.is_dir() else []:
        tmp.unlink(missing_ok=True)


# -- random number generator state -----------------------------------------------------------

def capture_rng() -> dict:
    """Every global RNG state, as plain data."""
    version, mt, gauss = random.getstate()
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "python": [version, list(mt), gauss],
             "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- checkpoint files -------------------------------------------------------------------------

@dataclass
class Progress:
    """Where training stands."""

    images: int = 0          # real images shown to the model (kimg * 1000)
    step: int = 0            # train_step calls
    train_seconds: float = 0.0

    @property
    def kimg(self) -> float:
        return self.images / 1000


@dataclass
class Checkpoint:
    """Everything a checkpoint file holds.

    ``to_dict()`` is what is saved: plain data only, so it loads with ``weights_only=True``.
    ``from_dict()`` checks a loaded dict and brings older format versions up to date through
    MIGRATIONS, so every checkpoint ever written keeps loading; an architecture brings its own
    state's older layouts up to date in ``Architecture.upgrade_checkpoint``.
    """

    architecture: str
    config: dict
    data_spec: DataSpec
    state: dict
    progress: Progress
    train: dict = field(default_factory=dict)     # TrainConfig values ({} when imported)
    plugin: str = "?"
    plugin_version: str = "?"
    ganzoo_version: str = "?"
    rng: dict | None = None                       # None: imported, nothing to restore
    imported: dict | None = None                  # {"importer", "source"} of a foreign file

    def to_dict(self) -> dict:
        data = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "ganzoo_version": self.ganzoo_version, "architecture": self.architecture,
                "plugin": self.plugin, "plugin_version": self.plugin_version,
                "config": self.config, "data_spec": self.data_spec.to_dict(),
                "train": self.train, "state": self.state,
                "progress": dataclasses.asdict(self.progress)}
        if self.rng is not None:
            data["rng"] = self.rng
        if self.imported is not None:
            data["imported"] = self.imported
        return data

    @classmethod
    def from_dict(cls, data, path: Path | None = None) -> "Checkpoint":
        _check_structure(data, path)
        version = data.get("format_version", 0)
        for step in range(version, FORMAT_VERSION):
            data = MIGRATIONS[step](data)
        try:
            return cls(architecture=data["architecture"], config=data["config"],
                       data_spec=DataSpec.from_dict(data["data_spec"]), state=data["state"],
                       progress=Progress(**data["progress"]), train=data.get("train") or {},
                       plugin=str(data.get("plugin", "?")),
                       plugin_version=str(data.get("plugin_version", "?")),
                       ganzoo_version=str(data.get("ganzoo_version", "?")),
                       rng=data.get("rng"), imported=data.get("imported"))
        except (TypeError, KeyError, ValueError) as e:
            raise GanzooError(f"checkpoint {path} is damaged: {_first_line(e)}")


def _unversioned_to_1(data: dict) -> dict:
    """Version 0: files written before checkpoints carried a format version; they hold the
    same keys, and 1 only adds the number."""
    return {**data, "format_version": 1}


# MIGRATIONS[v] turns a version-v checkpoint dict into version v + 1.
MIGRATIONS = {0: _unversioned_to_1}


def save_checkpoint(path: Path, *, arch: Architecture, plugin: str, plugin_version: str,
                    train: dict, progress: Progress) -> None:
    checkpoint = Checkpoint(architecture=arch.name, config=dataclasses.asdict(arch.config),
                            data_spec=arch.data, state=arch.state_dict(), progress=progress,
                            train=train, plugin=plugin, plugin_version=plugin_version,
                            ganzoo_version=ganzoo.__version__, rng=capture_rng())
    with atomic_write(path) as f:
        torch.save(checkpoint.to_dict(), f)


def read_checkpoint(path: Path, *, trust: bool = False, registry=None) -> dict:
    """Load a checkpoint's data, turning every way it can be wrong into one clear line.

    A plain pickle (another project's network snapshot, such as StyleGAN2-ADA's
    ``network-snapshot-*.pkl``) is read as data through the registered importers
    (:mod:`ganzoo.importers`), never by running code from it, with or without ``trust``.
    A ganzoo checkpoint's zip records are checked against their CRCs first: torch itself
    would load a flipped byte in tensor data without a word."""
    return open_checkpoint(path, trust=trust, registry=registry).to_dict()


def open_checkpoint(path: Path, *, trust: bool = False, registry=None) -> Checkpoint:
    """:func:`read_checkpoint` as a :class:`Checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise GanzooError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(len(_LEGACY_TORCH_MAGIC))
    legacy_torch = head == _LEGACY_TORCH_MAGIC
    if is_plain_pickle(head) and not legacy_torch:
        return Checkpoint.from_dict(import_pickle(path, registry), path)
    if zipfile.is_zipfile(path):
        _check_zip(path)
    elif not legacy_torch:
        raise GanzooError(f"checkpoint {path} is unreadable: it is {describe_file(path)}, "
                          "not a checkpoint")
    return Checkpoint.from_dict(_torch_load(path, trust), path)


# The pickled magic number that starts torch.save's pre-1.6 (non-zip) format.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as e:
        raise GanzooError(f"checkpoint {path} is unreadable (truncated or corrupt): "
                          f"{_first_line(e)}")
    if bad is not None:
        raise GanzooError(f"checkpoint {path} is corrupt: its record {bad} fails its CRC "
                          "check (a damaged copy or disk)")


def _torch_load(path: Path, trust: bool):
    with warnings.catch_warnings():      # torch's own advice would sit above our one line
        warnings.simplefilter("ignore")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            if "weights only" not in str(e).lower() and "weights_only" not in str(e):
                raise GanzooError(f"checkpoint {path} is unreadable (corrupt): "
                                  f"{_first_line(e)}")
            if not trust:
                raise GanzooError(f"checkpoint {path} contains Python objects that need pickle "
                                  "code execution to load; pass --trust only if you trust its "
                                  "source")
        except Exception as e:  # noqa: BLE001 - zip errors, EOF, bad magic numbers...
            raise GanzooError(f"checkpoint {path} is unreadable (truncated or not a "
                              f"checkpoint): {_first_line(e)}")
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001
            raise GanzooError(f"checkpoint {path} is unreadable: {_first_line(e)}")


# What every ganzoo checkpoint holds, and of which type.
_REQUIRED = {"architecture": str, "config": dict, "data_spec": dict, "state": dict,
             "progress": dict}


def _check_structure(data, path: Path) -> None:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GanzooError(f"{path} is not a ganzoo checkpoint (a torch file of something else)")
    if not isinstance(data.get("format_version", 0), int):
        raise GanzooError(f"checkpoint {path} is damaged: format_version is not a number")
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise GanzooError(f"checkpoint {path} has format version {data['format_version']}; "
                          f"this ganzoo reads up to {FORMAT_VERSION}: upgrade ganzoo")
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind):
            what = "has no" if key not in data else f"has a {type(data[key]).__name__} as its"
            raise GanzooError(f"checkpoint {path} is damaged: it {what} '{key}'")


_SIGNATURES = [(b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
               (b"GIF8", "a GIF image"), (b"\x1f\x8b", "a gzip file"),
               (b"%PDF", "a PDF document"), (b"\x7fELF", "a program (ELF)")]


def describe_file(path: Path) -> str:
    """What a file that is not a checkpoint looks like, for the error line."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        return "a truncated or damaged zip (its directory at the end is missing)"
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a file format ganzoo knows (binary data)"
    if text.lstrip()[:1] in ("{", "["):
        try:
            json.loads(Path(path).read_bytes()[:1 << 20])
            return "JSON text"
        except ValueError:
            pass
    return "text"


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


@dataclass
class LoadedCheckpoint:
    path: Path
    data: dict
    model: Architecture

    @property
    def progress(self) -> Progress:
        return Progress(**self.data["progress"])


def build_model(data: dict, device: torch.device, registry=None,
                expect_arch: str | None = None, path: Path | None = None) -> Architecture:
    """Rebuild the architecture a checkpoint was saved from and load its state."""
    from ganzoo import make_config
    from ganzoo.registry import get_registry
    registry = registry or get_registry()
    name = data["architecture"]
    if expect_arch is not None and name != expect_arch:
        raise GanzooError(f"checkpoint {path} is from architecture '{name}', not "
                          f"'{expect_arch}'")
    cls = registry.architecture(name)
    data = cls.upgrade_checkpoint(data)
    model = cls(make_config(cls, data["config"]), DataSpec.from_dict(data["data_spec"]), device)
    load_state(model, data["state"], path)
    return model


def load_state(model: Architecture, state: dict, path: Path | None) -> None:
    """``model.load_state_dict(state)``, a mismatch reported as one line naming the file."""
    try:
        model.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError) as e:
        raise GanzooError(f"checkpoint {path} does not fit {model.name}: {_first_line(e)}")


def load_model(path: Path, *, trust: bool = False, device: torch.device | None = None,
               registry=None, expect_arch: str | None = None) -> LoadedCheckpoint:
    data = read_checkpoint(Path(path), trust=trust, registry=registry)
    model = build_model(data, device or torch.device("cpu"), registry, expect_arch, path)
    return LoadedCheckpoint(Path(path), data, model)


def flat_tensors(state, prefix: str = "") -> dict[str, torch.Tensor]:
    """All tensors in a nested state dict, keyed by dotted path (to compare two states)."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(state, torch.Tensor):
        out[prefix] = state
    elif isinstance(state, dict):
        for k, v in state.items():
            out.update(flat_tensors(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            out.update(flat_tensors(v, f"{prefix}.{i}"))
    return out
