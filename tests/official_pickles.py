"""Pickles in the layout of NVlabs' stylegan2-ada-pytorch snapshots, for the importer's tests.

The official code pickles live modules whose classes are "persistent": each object pickles as
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``meta`` = {type: 'class',
version, module_src, class_name, state: the object's __dict__}; ``dnnlib.util.EasyDict``
holds the training options. :func:`write_stand_ins` writes our own stand-in ``torch_utils``
and ``dnnlib`` packages into a directory: loading such a pickle the normal way (pickle.load)
runs the stand-in, which writes ``MARKER_RECONSTRUCT``; each object's ``module_src`` writes
``MARKER_SOURCE`` when executed. A reader that runs no code from the file leaves both absent.
"""
from __future__ import annotations

import io
import pickle
import sys
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

# The official reference data (CI has ../shared; a user's clone may not: skip then).
OFFICIAL_FIXTURES = (Path(__file__).resolve().parents[2] / "shared" / "fixtures"
                     / "stylegan2-official")
MARKER_RECONSTRUCT = "reconstructed-by-running-code"
MARKER_SOURCE = "module-src-was-executed"

PERSISTENCE_SRC = '''
"""Stand-in for the official torch_utils.persistence (test data only)."""
from pathlib import Path

MARKER = Path({marker!r})


def _reconstruct_persistent_obj(meta):
    # What the official loader does in essence: compile and run the embedded module source.
    MARKER.write_text("persistent object reconstructed")
    exec(compile(meta["module_src"], "<module_src>", "exec"), {{}})
    return meta
'''
DNNLIB_SRC = '''
class EasyDict(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)

    def __setattr__(self, name, value):
        self[name] = value
'''
MODULE_STATE_KEYS = ("training", "_parameters", "_buffers", "_non_persistent_buffers_set",
                     "_modules")


def write_stand_ins(root: Path) -> None:
    (root / "torch_utils").mkdir(parents=True, exist_ok=True)
    (root / "torch_utils" / "__init__.py").write_text("")
    (root / "torch_utils" / "persistence.py").write_text(
        PERSISTENCE_SRC.format(marker=str(root / MARKER_RECONSTRUCT)))
    (root / "dnnlib").mkdir(exist_ok=True)
    (root / "dnnlib" / "__init__.py").write_text("from dnnlib.util import EasyDict\n")
    (root / "dnnlib" / "util.py").write_text(DNNLIB_SRC)


@contextmanager
def stand_ins_importable(root: Path):
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.split(".")[0] in ("torch_utils", "dnnlib")]:
            del sys.modules[name]


class _OfficialPickler(pickle.Pickler):
    """Pickles nn.Modules as the official persistent objects."""

    def __init__(self, file, root: Path, class_names: dict[int, str],
                 init_kwargs: dict[int, dict]):
        super().__init__(file, protocol=4)
        import torch_utils.persistence as persistence  # the stand-in, importable now
        self.reconstruct = persistence._reconstruct_persistent_obj
        self.class_names, self.init_kwargs = class_names, init_kwargs
        self.module_src = (f"from pathlib import Path\n"
                           f"Path({str(root / MARKER_SOURCE)!r}).write_text('ran')\n")

    def reducer_override(self, obj):
        if not isinstance(obj, nn.Module):
            return NotImplemented
        state = {k: v for k, v in vars(obj).items() if k in MODULE_STATE_KEYS}
        state["_init_args"] = ()
        state["_init_kwargs"] = self.init_kwargs.get(id(obj), {})
        name = self.class_names.get(id(obj), f"training.networks.{type(obj).__name__}")
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=name,
                    state=state)
        return self.reconstruct, (meta,)


def official_pickle(root: Path, snapshot, class_names: dict | None = None,
                    init_kwargs: dict | None = None) -> bytes:
    """``snapshot`` (a dict of modules and plain data, or one module) pickled as the official
    code would. ``class_names``/``init_kwargs`` map modules to their official class name and
    constructor arguments; ``training_set_kwargs`` dicts become the stand-in EasyDict."""
    write_stand_ins(root)
    with stand_ins_importable(root):
        import dnnlib
        if isinstance(snapshot, dict) and "training_set_kwargs" in snapshot:
            snapshot = {**snapshot,
                        "training_set_kwargs": dnnlib.EasyDict(snapshot["training_set_kwargs"])}
        buf = io.BytesIO()
        _OfficialPickler(buf, root, {id(k): v for k, v in (class_names or {}).items()},
                         {id(k): v for k, v in (init_kwargs or {}).items()}).dump(snapshot)
    for marker in (MARKER_RECONSTRUCT, MARKER_SOURCE):
        (root / marker).unlink(missing_ok=True)
    return buf.getvalue()


def fixture_networks(fixture: dict):
    """ganzoo's G and D built from a reference file's official arguments, holding its
    official weights as they are."""
    from ganzoo_plugins.stylegan2_ada.model import network_spec
    from ganzoo_plugins.stylegan2_ada.networks import Discriminator, Generator
    from ganzoo_plugins.stylegan2_ada.official import config_from_kwargs
    from ganzoo_plugins.stylegan2_ada.config import resolve
    config, spec = config_from_kwargs(fixture["G_kwargs"], fixture["D_kwargs"])
    net_spec = network_spec(resolve(config, spec.resolution), spec)
    G, D = Generator(net_spec).eval(), Discriminator(net_spec).eval()
    G.load_state_dict(fixture["G"])
    D.load_state_dict(fixture["D"])
    return G.requires_grad_(False), D.requires_grad_(False)


def snapshot_pickle(root: Path, fixture: dict, augment_p: float = 0.25) -> bytes:
    """A whole ``network-snapshot`` pickle (G, D, G_ema, augment_pipe, training_set_kwargs)
    of a reference file's networks."""
    from ganzoo_plugins.stylegan2_ada.augment import AugmentPipe
    G, D = fixture_networks(fixture)
    pipe = AugmentPipe("bgc")
    pipe.p.fill_(augment_p)
    bgc = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
               brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    snapshot = {"G": G, "D": D, "G_ema": G, "augment_pipe": pipe,
                "training_set_kwargs": {"path": "/data/x.zip", "use_labels": True,
                                        "resolution": fixture["G_kwargs"]["img_resolution"]}}
    return official_pickle(root, snapshot,
                           class_names={G: "training.networks.Generator",
                                        D: "training.networks.Discriminator",
                                        pipe: "training.augment.AugmentPipe"},
                           init_kwargs={G: fixture["G_kwargs"], D: fixture["D_kwargs"],
                                        pipe: bgc})


def load_fixture(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def write_snapshot(tmp_path: Path, name: str = "sg2ada-32-cond5.pt") -> tuple[Path, dict]:
    """``tmp_path/network-snapshot-000120.pkl`` of reference file ``name`` (p 0.25), and the
    reference data; skips the test when ../shared is absent."""
    import pytest
    if not OFFICIAL_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures/stylegan2-official is absent")
    fixture = load_fixture(OFFICIAL_FIXTURES / name)
    path = tmp_path / "network-snapshot-000120.pkl"
    path.write_bytes(snapshot_pickle(tmp_path / "stand-ins", fixture, augment_p=0.25))
    return path, fixture
