"""Official StyleGAN2-ADA networks as ganzoo checkpoints.

NVlabs' stylegan2-ada-pytorch writes ``network-snapshot-NNNNNN.pkl`` files holding
``{G, D, G_ema, augment_pipe, training_set_kwargs}`` (its pretrained FFHQ, AFHQ, MetFaces,
BreCaHAD... pickles have the same layout); users also pickle a single network. The
stylegan3 repository's ``--cfg stylegan2`` pickles hold the same networks
(``training.networks_stylegan2``), their synthesis options flattened into G's.

:mod:`ganzoo.safe_pickle` reads these files as data. This module recovers the constructor
arguments (``init_kwargs``) into a :class:`StyleGAN2ADAConfig`, builds ganzoo's networks
(their state dict names and shapes are the official ones; the weight layout too, see
``networks.SynthesisLayer``) and loads the weights. ADA's p comes from
``augment_pipe``'s buffer, kimg from the snapshot's file name. Optimiser state is not in
these files: a resume or fine-tune starts Adam fresh, as the official resume does.

Refused, with the reason: StyleGAN3's alias-free networks (-t/-r: another synthesis network),
official options ganzoo's networks do not implement (a 'skip' D, a 'resnet' or 'orig' G,
another mapping learning rate or filter), and TensorFlow-era pickles (refused
when read: they name dnnlib.tflib classes).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import ganzoo
from ganzoo.architecture import DataSpec
from ganzoo.checkpoint import Checkpoint, Progress
from ganzoo.errors import GanzooError
from ganzoo.importers import CheckpointImporter
from ganzoo.safe_pickle import PersistentObject
from ganzoo_plugins.stylegan2_ada.config import StyleGAN2ADAConfig

FAMILIES = ("training.networks.", "training.networks_stylegan2.")
REFUSED_FAMILIES = {
    "training.networks_stylegan3.": "a StyleGAN3 (alias-free, --cfg stylegan3-t/-r) network, "
                                    "whose synthesis network ganzoo does not implement",
}
SNAPSHOT_NAME = re.compile(r"network-snapshot-(\d+)\.pkl$")

# The official constructors' defaults, for arguments a pickle's init_kwargs leave out.
MAPPING_DEFAULTS = {"num_layers": 8, "lr_multiplier": 0.01, "w_avg_beta": 0.995,
                    "embed_features": None, "layer_features": None, "activation": "lrelu"}
SYNTHESIS_DEFAULTS = {"channel_base": 32768, "channel_max": 512, "num_fp16_res": 0,
                      "conv_clamp": None, "architecture": "skip",
                      "resample_filter": [1, 3, 3, 1], "use_noise": True,
                      "activation": "lrelu"}
D_DEFAULTS = {"architecture": "resnet", "channel_base": 32768, "channel_max": 512,
              "num_fp16_res": 0, "conv_clamp": None, "cmap_dim": None}
# Official options whose values ganzoo's networks implement only at these settings.
FIXED = {"mapping lr_multiplier": 0.01, "mapping w_avg_beta": 0.995,
         "mapping embed_features": None, "mapping layer_features": None,
         "mapping activation": "lrelu", "G architecture": "skip",
         "G resample_filter": [1, 3, 3, 1], "G use_noise": True, "G activation": "lrelu",
         "D cmap_dim": None, "D mbstd_num_channels": 1}
# The official augmentation presets ganzoo has, by the transforms they switch on.
AUGMENT_KEYS = {"blit": {"xflip", "rotate90", "xint"},
                "geom": {"scale", "rotate", "aniso", "xfrac"},
                "color": {"brightness", "contrast", "lumaflip", "hue", "saturation"}}


@dataclass
class OfficialSnapshot:
    """The networks of one pickle, as data."""

    G: PersistentObject | None
    D: PersistentObject | None
    G_ema: PersistentObject | None
    augment_pipe: PersistentObject | None = None

    @classmethod
    def of(cls, obj: Any) -> "OfficialSnapshot":
        if isinstance(obj, PersistentObject):      # a single pickled network
            if _kind(obj) == "Generator":
                return cls(None, None, obj)
            raise GanzooError(f"it holds a single {obj.class_name}; only a generator (or a "
                              "whole snapshot) can be imported")
        parts = {k: obj.get(k) for k in ("G", "D", "G_ema", "augment_pipe")}
        for key, part in parts.items():
            if part is not None and not isinstance(part, PersistentObject):
                raise GanzooError(f"its {key} is a {type(part).__name__}, not a network")
        return cls(**parts)

    @property
    def generator(self) -> PersistentObject:
        return self.G_ema or self.G


def _kind(obj: PersistentObject) -> str | None:
    """'Generator', 'Discriminator', 'AugmentPipe'... for an official class, else None."""
    for prefix, why in REFUSED_FAMILIES.items():
        if obj.class_name.startswith(prefix):
            raise GanzooError(f"it holds {why}")
    if obj.class_name == "training.augment.AugmentPipe":
        return "AugmentPipe"
    for prefix in FAMILIES:
        if obj.class_name.startswith(prefix):
            return obj.class_name[len(prefix):]
    return None


class OfficialImporter(CheckpointImporter):
    name = "stylegan2-ada-pytorch"

    def recognises(self, obj: Any) -> bool:
        if isinstance(obj, PersistentObject):
            return _kind(obj) is not None
        return isinstance(obj, dict) and any(
            isinstance(obj.get(k), PersistentObject) and _kind(obj[k]) is not None
            for k in ("G", "G_ema", "D"))

    def checkpoint(self, obj: Any, path: Path) -> dict:
        snap = OfficialSnapshot.of(obj)
        if snap.generator is None:
            raise GanzooError(f"{path} holds no generator (G or G_ema)")
        return import_snapshot(snap, snapshot_kimg(path))


def snapshot_kimg(path: Path) -> float:
    """kimg of a ``network-snapshot-NNNNNN.pkl``; 0 for any other name."""
    match = SNAPSHOT_NAME.search(Path(path).name)
    return float(match.group(1)) if match else 0.0


# -- constructor arguments to a ganzoo config ---------------------------------------------------

def _with_defaults(given: dict, defaults: dict) -> dict:
    return {**defaults, **given}


def _normalise(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def config_from_kwargs(G_kwargs: dict, D_kwargs: dict | None, augment_p: float | None = None,
                       augpipe: str = "bgc") -> tuple[StyleGAN2ADAConfig, DataSpec]:
    """The ganzoo config and data spec of official Generator/Discriminator arguments
    (D_kwargs None: a generator alone, D takes G's settings)."""
    G = dict(G_kwargs)
    # stylegan2-ada nests the synthesis arguments; stylegan3's networks_stylegan2 flattens them.
    synthesis = _with_defaults({**{k: v for k, v in G.items() if k in SYNTHESIS_DEFAULTS},
                                **dict(G.get("synthesis_kwargs") or {})}, SYNTHESIS_DEFAULTS)
    mapping = _with_defaults(dict(G.get("mapping_kwargs") or {}), MAPPING_DEFAULTS)
    D = _with_defaults(dict(D_kwargs or {k: synthesis[k] for k in
                                         ("channel_base", "channel_max", "num_fp16_res",
                                          "conv_clamp")}), D_DEFAULTS)
    d_mapping = _with_defaults(dict(D.get("mapping_kwargs") or {}), MAPPING_DEFAULTS)
    epilogue = dict(D.get("epilogue_kwargs") or {})
    actual = {"mapping lr_multiplier": mapping["lr_multiplier"],
              "mapping w_avg_beta": mapping["w_avg_beta"],
              "mapping embed_features": mapping["embed_features"],
              "mapping layer_features": mapping["layer_features"],
              "mapping activation": mapping["activation"],
              "G architecture": synthesis["architecture"],
              "G resample_filter": _normalise(synthesis["resample_filter"]),
              "G use_noise": synthesis["use_noise"], "G activation": synthesis["activation"],
              "D cmap_dim": D["cmap_dim"],
              "D mbstd_num_channels": epilogue.get("mbstd_num_channels", 1)}
    for what, value in actual.items():
        if value != FIXED[what]:
            raise GanzooError(f"its {what} is {value!r}; ganzoo's StyleGAN2 implements "
                              f"{FIXED[what]!r} only")
    if D["architecture"] not in ("resnet", "orig"):
        raise GanzooError(f"its D architecture is {D['architecture']!r}; ganzoo's StyleGAN2 "
                          "implements 'resnet' and 'orig' only")
    for key in ("channel_base", "channel_max", "conv_clamp"):
        if D[key] != synthesis[key]:
            raise GanzooError(f"its G and D differ in {key} ({synthesis[key]} and {D[key]}); "
                              "ganzoo builds both from one value")
    c_dim = int(G.get("c_dim", 0))
    config = StyleGAN2ADAConfig(
        cfg="auto", cond=c_dim > 0, map=int(mapping["num_layers"]),
        d_map=int(d_mapping["num_layers"]), cbase=int(synthesis["channel_base"]),
        cmax=int(synthesis["channel_max"]), z_dim=int(G["z_dim"]), w_dim=int(G["w_dim"]),
        mbstd_group=int(epilogue.get("mbstd_group_size", 4)), d_arch=D["architecture"],
        fp16_res=int(synthesis["num_fp16_res"]),
        conv_clamp=float(synthesis["conv_clamp"] or 0), augpipe=augpipe,
        p=None if augment_p is None else min(max(augment_p, 0.0), 1.0))
    spec = DataSpec(int(G["img_resolution"]), int(G["img_channels"]), c_dim,
                    tuple(str(i) for i in range(c_dim)))
    return config, spec


def augment_preset(pipe: PersistentObject | None) -> str:
    """ganzoo's preset with the same transforms as the official pipe ('bgc' when none
    matches or there is no pipe)."""
    if pipe is None:
        return "bgc"
    on = {k for k, v in pipe.init_kwargs.items() if isinstance(v, (int, float)) and v}
    for preset in ("blit", "geom", "color", "bgc"):
        wanted = set().union(*(AUGMENT_KEYS[p] for p in
                               (("blit", "geom", "color") if preset == "bgc" else (preset,))))
        if on == wanted:
            return preset
    return "bgc"


# -- weights ------------------------------------------------------------------------------------

def import_snapshot(snap: OfficialSnapshot, kimg: float = 0.0) -> dict:
    """A ganzoo checkpoint's data holding the snapshot's networks."""
    from ganzoo_plugins.stylegan2_ada.model import StyleGAN2ADA
    generator = snap.generator
    _kind(generator)
    augment_p = None
    if snap.augment_pipe is not None:
        p = snap.augment_pipe.module_state().get("p")
        augment_p = None if p is None else float(p)
    config, spec = config_from_kwargs(generator.init_kwargs,
                                      snap.D.init_kwargs if snap.D is not None else None,
                                      augment_p, augment_preset(snap.augment_pipe))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)     # the parts a file leaves out (D of a lone G) start the same
        model = StyleGAN2ADA(config, spec, torch.device("cpu"))
    _load(model.G, (snap.G or generator).module_state(), "G")
    _load(model.ema.model, generator.module_state(), "G_ema")
    if snap.D is not None:
        _load(model.D, snap.D.module_state(), "D")
    if model.augment_pipe is not None and augment_p is not None:
        model.augment_pipe.p.copy_(torch.tensor(augment_p))
        if model.ada is not None:
            model.ada.p = augment_p
    model.images_seen = int(kimg * 1000)
    return Checkpoint(architecture=StyleGAN2ADA.name, config=dataclasses.asdict(model.config),
                      data_spec=spec, state=model.state_dict(),
                      progress=Progress(images=int(kimg * 1000)), plugin="stylegan2-ada",
                      plugin_version=ganzoo.__version__,
                      ganzoo_version=ganzoo.__version__).to_dict()


def _load(module: torch.nn.Module, state: dict, what: str) -> None:
    mine = module.state_dict()
    missing = sorted(set(mine) - set(state))
    extra = sorted(set(state) - set(mine))
    wrong = sorted(k for k in set(mine) & set(state) if mine[k].shape != state[k].shape)
    if missing or extra or wrong:
        first = (f"{missing[0]} is missing" if missing else f"{extra[0]} is unexpected"
                 if extra else f"{wrong[0]} is {list(state[wrong[0]].shape)}, expected "
                 f"{list(mine[wrong[0]].shape)}")
        raise GanzooError(f"its {what} does not fit the network its arguments describe: "
                          f"{first}")
    module.load_state_dict({k: v.to(mine[k].dtype) for k, v in state.items()})
