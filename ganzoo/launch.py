"""One path from options to a Trainer, shared by `ganzoo train`, the small-data experiment and
the Python API (:func:`ganzoo.train`).

It decides what a run starts from: a fresh model; ``--resume`` (a run's checkpoint: its saved
options win, except the few a resume may change; or another project's snapshot: the options
given now, in a new run directory); or ``--init`` (another run's weights and architecture
options, less the options given now).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganzoo import make_config
from ganzoo.architecture import Architecture
from ganzoo.checkpoint import (checkpoints_of, list_runs, read_checkpoint, resolve_checkpoint,
                               run_architecture, run_of_checkpoint)
from ganzoo.errors import GanzooError
from ganzoo.importers import IMPORTED_KEY
from ganzoo.trainer import ResumeState, Trainer, TrainConfig, read_init

# What a resume of a run may change; everything else comes from the run's checkpoint.
# (--compile and --cuda-graphs change how the step runs, not what it computes.)
RESUME_CHANGEABLE = frozenset({"kimg", "device", "workers", "compile", "cuda_graphs"})


@dataclass
class TrainRequest:
    """What to train, as the user gave it."""

    arch: type[Architecture]
    train: dict                      # TrainConfig values (every field)
    arch_options: dict               # the architecture's Config values (every field)
    given: set[str] = field(default_factory=set)   # names set explicitly: they win
    resume: str | None = None        # --resume: latest | RUN | CKPT
    trust: bool = False              # allow checkpoints that need pickle code execution


@dataclass
class Plan:
    """What the trainer gets: resolved options and what the run starts from."""

    config: TrainConfig
    arch_config: Any
    resume: ResumeState | None = None
    init: ResumeState | None = None
    run_dir: Path | None = None      # the run a resume continues in; None: a new one
    warnings: list[str] = field(default_factory=list)


def plan(request: TrainRequest, registry=None) -> Plan:
    """Merge the request with the checkpoint it resumes or starts from."""
    cls, train, arch_options = request.arch, dict(request.train), dict(request.arch_options)
    resume = run_dir = None
    warnings: list[str] = []
    if request.resume:
        path = resume_checkpoint(request.resume, Path(train["out"]), cls.name)
        data = read_checkpoint(path, trust=request.trust, registry=registry)
        if data["architecture"] != cls.name:
            raise GanzooError(f"checkpoint {path} is from architecture "
                              f"'{data['architecture']}', not '{cls.name}'")
        data = cls.upgrade_checkpoint(data)
        if IMPORTED_KEY in data:
            train, arch_options = _resume_imported(data, train, arch_options, request.given)
        else:
            run_dir = run_of_checkpoint(path)
            train, arch_options, ignored = _resume_run(data, train, request.given, run_dir)
            if ignored:
                where = f" (the run continues in {run_dir})" if "out" in ignored else ""
                warnings.append("on --resume the run's saved options are used; ignoring "
                                + ", ".join("--" + k.replace("_", "-") for k in ignored)
                                + where)
        resume = ResumeState(path, data)     # an imported one: in a new run directory
    elif not train.get("data"):
        raise GanzooError(f"ganzoo train {cls.name}: --data SPEC is required "
                          "(try --data shapes; `ganzoo list` shows data sets)")
    init = None
    if train.get("init") and resume is None:
        init = read_init(cls, train["init"], Path(train["out"]), request.trust)
        # Its architecture options, less those given here (a fine-tuning lr, say).
        arch_options = {**init.data["config"],
                        **{k: v for k, v in arch_options.items() if k in request.given}}
    return Plan(TrainConfig(**train), make_config(cls, arch_options), resume, init, run_dir,
                warnings)


def _resume_run(data: dict, train: dict, given: set, run_dir: Path | None
                ) -> tuple[dict, dict, list[str]]:
    """A run's own checkpoint: its saved options, less the changeable ones given now (a
    checkpoint outside a run directory starts a new run: under --out when given)."""
    changeable = RESUME_CHANGEABLE | ({"out"} if run_dir is None else set())
    ignored = sorted(k for k in given - changeable if k in train or k in data["config"])
    resumed = {**data["train"], **{k: train[k] for k in changeable if k in given}}
    return resumed, data["config"], ignored


def _resume_imported(data: dict, train: dict, arch_options: dict, given: set
                     ) -> tuple[dict, dict]:
    """Another project's snapshot (``--resume network-snapshot-NNNNNN.pkl``) holds the
    networks, kimg and ADA's p, but no trainer options: those come from this request (--data
    is required), and its architecture options, less those given here."""
    if not train.get("data"):
        raise GanzooError(f"--resume {data[IMPORTED_KEY]['source']}: an imported network "
                          "carries no trainer options; give --data (and --batch, --kimg...)")
    return train, {**data["config"], **{k: v for k, v in arch_options.items() if k in given}}


def resume_checkpoint(ref: str, out: Path, arch: str) -> Path:
    """The checkpoint ``--resume REF`` continues. ``latest`` means the newest run of ``arch``:
    when that one stopped before its first checkpoint, falling back to an older run would
    silently extend a finished run instead, so it is an error."""
    if ref == "latest":
        runs = [r for r in list_runs(out) if run_architecture(r) == arch
                or (run_architecture(r) is None and r.name[6:].startswith(arch + "-"))]
        if runs and not checkpoints_of(runs[-1]):
            raise GanzooError(f"--resume latest: the newest {arch} run, {runs[-1]}, has no "
                              "checkpoint (it stopped before its first --snap); start a new "
                              "run, or name an older run to resume it")
    return resolve_checkpoint(ref, out, arch=arch)


def make_trainer(request: TrainRequest, registry, *, quiet: bool = False,
                 plan_: Plan | None = None) -> Trainer:
    """The Trainer of a request, recording the plugin that provides the architecture."""
    plan_ = plan_ or plan(request, registry)
    registered = registry.architectures().get(request.arch.name)
    plugin = (registered.plugin.name, registered.plugin.version) if registered else ("?", "?")
    return Trainer(request.arch, plan_.arch_config, plan_.config, registry,
                   resume=plan_.resume, init=plan_.init, run_dir=plan_.run_dir, quiet=quiet,
                   plugin=plugin)


def request_for(arch: type[Architecture], options: dict, resume: str | None = None,
                trust: bool = False) -> TrainRequest:
    """A request from keyword options (the Python API): trainer options by TrainConfig's
    field names, the rest the architecture's; every option passed counts as given."""
    trainer_names = {f.name for f in dataclasses.fields(TrainConfig)}
    arch_names = {f.name for f in dataclasses.fields(arch.Config)}
    unknown = sorted(set(options) - trainer_names - arch_names)
    if unknown:
        raise GanzooError(f"{arch.name} has no option(s) {', '.join(unknown)}")
    defaults = TrainConfig(data=None, kimg=arch.default_kimg)
    train = {**dataclasses.asdict(defaults),
             **{k: v for k, v in options.items() if k in trainer_names}}
    arch_defaults = dataclasses.asdict(arch.Config())
    arch_options = {**arch_defaults, **{k: v for k, v in options.items() if k in arch_names}}
    return TrainRequest(arch, train, arch_options, set(options), resume, trust)
