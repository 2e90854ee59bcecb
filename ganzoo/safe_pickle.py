"""Read plain pickles of network snapshots as data, without running any code from them.

NVlabs' StyleGAN2-ADA (and StyleGAN3) save networks with ``pickle.dump`` of live modules.
Their classes are "persistent": each object pickles as
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, where ``meta`` holds the
class's module source (``module_src``), its name and the object's ``__dict__``. Loading
those files the usual way imports that module source and executes it.

:func:`load` instead reads the stream with an unpickler that resolves only a fixed set of
globals, each to a function of ours that builds plain data:

- tensors, parameters and their storages (a storage arrives as
  ``torch.storage._load_from_bytes(bytes)``; the bytes are a ``torch.save`` file, read with
  ``torch.load(weights_only=True)``);
- containers (``collections.OrderedDict``, ``set``, ``frozenset``, ``dnnlib``'s ``EasyDict``
  as a dict) and numpy scalars and dtypes;
- persistent objects, which become :class:`PersistentObject` data: ``module_src`` is dropped
  unread, never compiled.

Any other global (``os.system``, ``builtins.eval``, a TensorFlow-era ``dnnlib.tflib``
network...) stops the load with :class:`RefusedGlobal`, naming it.
"""
from __future__ import annotations

import io
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch

from ganzoo.errors import GanzooError

PERSISTENCE_MODULE = "torch_utils.persistence"


class RefusedGlobal(GanzooError):
    """The pickle names a global that reading it as data cannot allow."""

    def __init__(self, module: str, name: str):
        self.qualified = f"{module}.{name}"
        super().__init__(f"it needs {self.qualified}, which ganzoo never runs")


@dataclass
class PersistentObject:
    """A persistent-class instance as data: its class's qualified name (e.g.
    ``training.networks.Generator``) and its ``__dict__`` (``_parameters``, ``_buffers``,
    ``_modules``, ``_init_kwargs``...)."""

    class_name: str
    state: dict = field(repr=False)
    version: int | None = None

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args") or self.state.get("init_args") or ())

    @property
    def init_kwargs(self) -> dict:
        return dict(self.state.get("_init_kwargs") or self.state.get("init_kwargs") or {})

    def submodules(self) -> dict[str, Any]:
        return dict(self.state.get("_modules") or {})

    def module_state(self) -> dict[str, torch.Tensor]:
        """What ``nn.Module.state_dict()`` would return: parameters, then persistent
        buffers, then each submodule's under ``name.``."""
        out = {}
        for name, t in (self.state.get("_parameters") or {}).items():
            if t is not None:
                out[name] = _as_tensor(t, name)
        skipped = set(self.state.get("_non_persistent_buffers_set") or ())
        for name, t in (self.state.get("_buffers") or {}).items():
            if t is not None and name not in skipped:
                out[name] = _as_tensor(t, name)
        for name, sub in self.submodules().items():
            if isinstance(sub, PersistentObject):
                out.update({f"{name}.{k}": v for k, v in sub.module_state().items()})
            elif sub is not None:
                raise GanzooError(f"submodule {name} is a {type(sub).__name__}, not a network")
        return out


class PickledDict(dict):
    """Stands in for dict subclasses (``dnnlib.util.EasyDict``, ``OrderedDict``): a dict
    that also takes the attributes a pickle may set on it (a state dict's ``_metadata``)."""


def _as_tensor(t: Any, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise GanzooError(f"{name} is a {type(t).__name__}, not a tensor")
    return t


# -- the functions the allowed globals resolve to ---------------------------------------------

def _reconstruct_persistent(meta: dict) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise GanzooError("a persistent object of an unknown kind")
    state = meta.get("state")
    return PersistentObject(str(meta.get("class_name")), state if isinstance(state, dict) else {},
                            meta.get("version"))
    # meta["module_src"] is deliberately left unread.


def _load_storage(data: bytes):
    if not isinstance(data, (bytes, bytearray)):
        raise GanzooError("a tensor storage that is not bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # torch's notes on legacy storage formats
        return torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)


def _rebuild_tensor(storage, offset, size, stride, *_ignored) -> torch.Tensor:
    if not isinstance(storage, (torch.UntypedStorage, torch.TypedStorage)):
        raise GanzooError("a tensor without a storage")
    if isinstance(storage, torch.TypedStorage):
        dtype, storage = storage.dtype, storage._untyped_storage
    else:
        dtype = torch.uint8
    return torch.empty(0, dtype=dtype).set_(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_ignored) -> torch.Tensor:
    return _as_tensor(data, "parameter").detach()


def _rebuild_from_type(func, _new_type, args, _state) -> torch.Tensor:
    if func not in (_rebuild_tensor, _rebuild_parameter):
        raise GanzooError("a tensor subclass built by an unknown function")
    return func(*args)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise GanzooError("a numpy scalar of a non-numeric type")
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


def _numpy_dtype(spec, *_ignored):
    dtype = np.dtype(spec)
    if dtype.hasobject:
        raise GanzooError("a numpy object dtype")
    return dtype


class _Marker:
    """A class the stream names only as an argument (Parameter's type, numpy's ndarray)."""


ALLOWED: dict[tuple[str, str], Callable | type] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch.nn.parameter", "Parameter"): _Marker,
    ("collections", "OrderedDict"): PickledDict,    # may carry attributes (_metadata)
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("dnnlib.util", "EasyDict"): PickledDict,
    ("dnnlib", "EasyDict"): PickledDict,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
}
# torch.save's legacy storage classes (FloatStorage...) appear only inside the bytes that
# _load_from_bytes hands to torch.load(weights_only=True), never in the outer stream.


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(module, name) from None

    def persistent_load(self, pid):
        raise GanzooError("it uses persistent ids (a torch.save file, not a plain pickle)")


def is_plain_pickle(head: bytes) -> bool:
    """Whether a file starting with ``head`` (its first bytes) is a pickle stream of protocol
    2+ (not a zip, as ``torch.save`` writes; torch's legacy format starts with a pickled
    magic number, which :func:`load` refuses as it needs persistent ids)."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def load(source: Path | BinaryIO) -> Any:
    """The pickle's object as plain data; :class:`RefusedGlobal` or :class:`GanzooError`
    when it is more than data or broken."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as f:
            return load(f)
    try:
        return _DataUnpickler(source).load()
    except GanzooError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, RuntimeError, MemoryError) as e:
        raise GanzooError(f"not a readable pickle: {type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}")
