"""Other projects' network files, read as ganzoo checkpoints (the ``ganzoo_checkpoint_importers``
hook).

A file that is a plain pickle (not a ``torch.save`` zip) is read as data by
:mod:`ganzoo.safe_pickle`, which never runs code from it; each registered importer is then
asked whether it recognises the data, and the first that does turns it into the data of a
ganzoo checkpoint (what :func:`ganzoo.checkpoint.read_checkpoint` returns). Everything that
takes a checkpoint (generate, eval, --init, --resume, convert) thereby takes these files too.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar

from ganzoo import safe_pickle
from ganzoo.errors import GanzooError

#: Marks the data of an imported checkpoint: {"importer": name, "source": path}. A resume from
#: it starts a new run with the command line's trainer options (the file has none), and
#: restores no RNG state.
IMPORTED_KEY = "imported"


class CheckpointImporter(abc.ABC):
    """Turns the plain data of another project's pickle into a ganzoo checkpoint's data."""

    #: Short name shown in messages, e.g. "stylegan2-ada-pytorch".
    name: ClassVar[str]

    @abc.abstractmethod
    def recognises(self, obj: Any) -> bool:
        """Whether ``obj`` (from :func:`ganzoo.safe_pickle.load`) is this importer's."""

    @abc.abstractmethod
    def checkpoint(self, obj: Any, path: Path) -> dict:
        """The checkpoint data (format, architecture, config, data_spec, state, progress);
        a :class:`GanzooError` names what cannot be imported."""


def import_pickle(path: Path, registry=None) -> dict:
    """Read ``path`` (a plain pickle) through the first importer that recognises it."""
    from ganzoo.registry import get_registry
    try:
        obj = safe_pickle.load(path)
    except safe_pickle.RefusedGlobal as e:
        raise GanzooError(f"{path} is refused: {e}{_family_hint(e.qualified)}") from None
    except GanzooError as e:
        raise GanzooError(f"{path} is refused: {e}") from None
    importers = (registry or get_registry()).checkpoint_importers()
    for registered in importers.values():
        if registered.obj.recognises(obj):
            data = registered.obj.checkpoint(obj, Path(path))
            data[IMPORTED_KEY] = {"importer": registered.name, "source": str(path)}
            return data
    known = ", ".join(sorted(importers)) or "none"
    raise GanzooError(f"{path} is a pickle that no importer recognises (importers: {known})")


def _family_hint(qualified: str) -> str:
    if qualified.startswith("dnnlib.tflib"):
        return (" (a TensorFlow-era StyleGAN pickle: ganzoo reads the PyTorch releases' "
                "pickles)")
    return ""
