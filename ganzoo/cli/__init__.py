"""The `ganzoo` command line (click).

Exit codes: 0 done, 1 user error (one readable line; a traceback only with --debug),
2 usage error, 128+N when stopped by signal N (after saving a checkpoint).
"""
from __future__ import annotations

import collections.abc
import dataclasses
import itertools
import math
import os
import sys
import types
import typing
from typing import Any
from pathlib import Path

import click
import torch

import numpy as np

import ganzoo
from ganzoo.architecture import Architecture, GenerateRequest, check_config
from ganzoo.atomic import FULL, disk_full_message
from ganzoo.checkpoint import load_model, read_checkpoint, resolve_checkpoint
from ganzoo.data import (DatasetSource, ImageSet, PrepareOptions, find_source, resolve_data,
                         unknown_data)
from ganzoo.data.prepare import RESIZE_FILTERS, check_options
from ganzoo.data.zipset import write_zip
from ganzoo import distributed
from ganzoo.distributed import Rank, elastic_run, restarted_by_torchrun
from ganzoo.errors import GanzooError
from ganzoo.expand import ExpandOptions, expand, training_data
from ganzoo.experiment import SmallDataExperiment, SmallDataSetup
from ganzoo.launch import TrainRequest, make_trainer, plan
from ganzoo.registry import Registry, get_registry
from ganzoo.trainer import SEED_LIMIT, Stop, TrainConfig, pick_device
from ganzoo.viz import grid_image, save_image


def registry_from(ctx: click.Context) -> Registry:
    root = ctx.find_root()
    return get_registry(root.params.get("plugin") or ())


# -- options generated from Config dataclasses ---------------------------------------------------

def optional_inner(kind):
    """``X`` for ``X | None`` (an option whose None default means "decided elsewhere")."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else kind
    return kind


def config_options(config_cls: type, defaults: Any = None,
                   help_values: dict | None = None) -> list[click.Option]:
    """One click option per dataclass field, with its type, default and help.

    Field metadata (from :func:`ganzoo.option`): ``help``; ``choices``; ``metavar``;
    ``aliases`` (more flag names); ``switch`` (a bool that is a plain on-switch, no --no-X).
    ``defaults``: an instance whose values replace the fields' defaults (per architecture);
    ``help_values`` fill ``{name}`` placeholders in the help texts."""
    hints = typing.get_type_hints(config_cls)
    options = []
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        names = [flag, *f.metadata.get("aliases", ())]
        if defaults is not None:
            default = getattr(defaults, f.name)
        else:
            default = f.default if f.default is not dataclasses.MISSING else None
        helptext = f.metadata.get("help", "")
        if help_values:
            helptext = helptext.format(**help_values)
        kind = optional_inner(hints[f.name])
        extra = {"metavar": f.metadata["metavar"]} if "metavar" in f.metadata else {}
        if kind is bool and f.metadata.get("switch"):
            options.append(click.Option([*names, f.name], is_flag=True, default=default,
                                        help=helptext))
            continue
        if kind is bool:
            options.append(click.Option([f"{flag}/--no-{flag[2:]}", f.name], default=default,
                                        help=helptext, show_default=True))
            continue
        choices = f.metadata.get("choices")
        ptype = click.Choice(choices) if choices else {int: click.INT, float: click.FLOAT}.get(
            kind, click.STRING)
        options.append(click.Option([*names, f.name], type=ptype, default=default,
                                    help=helptext, show_default=True, **extra))
    return options


# -- the top-level group -----------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show tracebacks for errors")
@click.option("--plugin", multiple=True, metavar="MODULE",
              help="also load this module as a plugin (repeatable)")
@click.version_option(ganzoo.__version__, prog_name="ganzoo")
@click.pass_context
def cli(ctx: click.Context, debug: bool, plugin: tuple[str, ...]) -> None:
    """ganzoo: a GAN zoo for PyTorch. Architectures are plugins behind one interface."""


@cli.command("list")
@click.pass_context
def list_command(ctx: click.Context) -> None:
    """List architectures and data sets."""
    reg = registry_from(ctx)
    click.echo("Architectures:")
    for name, r in sorted(reg.architectures().items()):
        cls = r.obj
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        tags = ["conditional"] if cls.conditional else []
        if cls.resolutions:
            tags.append("res " + "/".join(map(str, cls.resolutions)))
        click.echo(f"  {name:16s} {doc}  [{', '.join(tags + ['plugin ' + r.plugin.name])}]")
    click.echo("Data sets:")
    for name, r in sorted(reg.datasets().items()):
        click.echo(f"  {name:16s} {r.obj.description}")
    broken = [p for p in reg.plugins if p.error]
    if broken:
        click.echo(f"({len(broken)} plugin(s) failed to load: see `ganzoo plugins`)")


@cli.command("plugins")
@click.pass_context
def plugins_command(ctx: click.Context) -> None:
    """List installed plugins, what each provides, and why any failed to load."""
    reg = registry_from(ctx)
    try:
        reg.load_all()
    except GanzooError as e:   # a duplicate name: show the plugins anyway, then the problem
        click.echo(f"error: {e}", err=True)
    debug = ctx.find_root().params.get("debug")
    for p in reg.plugins:
        state = f"FAILED: {p.error}" if p.error else ", ".join(p.provides) or "(nothing)"
        click.echo(f"{p.name:16s} {p.distribution} {p.version:8s} {p.module:28s} {state}")
        if debug and p.traceback:
            click.echo(p.traceback, err=True)

# -- data -------------------------------------------------------------------------------------

@cli.group("data")
def data_group() -> None:
    """Data sets: fetch downloads, prepare a stylegan2-ada zip, show what a spec holds.

    SPEC is what `ganzoo train --data` takes: an image folder, a .zip in the stylegan2-ada
    layout, or a registered name (`ganzoo list`).
    """


def prepare_options(resolution: int, channels: int, resize_filter: str = "lanczos",
                    max_images: int | None = None, seed: int = 0) -> PrepareOptions:
    options = PrepareOptions(resolution, channels, max_images, seed, resize_filter)
    check_options(options)
    return options


@data_group.command("fetch")
@click.argument("spec")
@click.pass_context
def data_fetch_command(ctx: click.Context, spec: str) -> None:
    """Download and verify what SPEC needs (embedded sets, folders and zips need nothing)."""
    reg = registry_from(ctx)
    path = Path(spec).expanduser()
    if path.is_dir() or (path.is_file() and path.suffix.lower() == ".zip"):
        click.echo(f"{spec}: a local {'folder' if path.is_dir() else 'zip'}; nothing to fetch")
        return
    source = find_source(spec, reg)
    if source is None:
        raise unknown_data(spec, reg)
    if type(source).fetch is DatasetSource.fetch:     # the base class's no-op
        click.echo(f"{spec}: nothing to fetch ({source.name} needs no download)")
        return
    source.fetch(spec)
    click.echo(f"{spec}: fetched")


@data_group.command("prepare")
@click.argument("src", metavar="SRC")
@click.option("--out", required=True, metavar="X.zip", help="the zip to write")
@click.option("--resolution", type=int, required=True, help="square size of the images")
@click.option("--channels", type=int, default=3, show_default=True, help="3 RGB, 1 greyscale")
@click.option("--resize-filter", type=click.Choice(list(RESIZE_FILTERS)), default="lanczos",
              show_default=True)
@click.option("--max-images", type=int, default=None, help="only the first N usable images")
@click.option("--seed", type=int, default=0, show_default=True, help="for procedural sets")
@click.pass_context
def data_prepare_command(ctx, src, out, resolution, channels, resize_filter, max_images, seed):
    """Prepare SRC once and write it as a zip in the stylegan2-ada layout (with labels)."""
    out_path = Path(out)
    if out_path.suffix.lower() != ".zip":
        raise GanzooError(f"--out {out}: the output must be a .zip file")
    options = prepare_options(resolution, channels, resize_filter, max_images, seed)
    data = resolve_data(src, options, registry_from(ctx))
    write_zip(data, out_path)
    labels = f", {len(data.class_names)} classes" if data.labels is not None else ", no labels"
    click.echo(f"wrote {out_path}: {len(data)} images, {data.resolution}x{data.resolution}, "
               f"{data.channels} channel(s){labels}")


def preview_grid(data: ImageSet, rows: int = 8, max_classes: int = 16):
    """Up to ``rows`` examples per class, one class per column; or an 8x8 grid."""
    if data.labels is None or not 0 < len(data.class_names) <= max_classes:
        return grid_image(data.images[:rows * 8], 8)
    by_class = [np.flatnonzero(data.labels == c)[:rows] for c in range(len(data.class_names))]
    cols = [c for c, idx in enumerate(by_class) if len(idx)]
    blank = np.zeros_like(data.images[:1])
    images = np.concatenate([data.images[by_class[c][r:r + 1]] if r < len(by_class[c])
                             else blank for r in range(rows) for c in cols])
    return grid_image(images, len(cols), col_titles=[data.class_names[c] for c in cols])


@data_group.command("expand")
@click.argument("run", metavar="RUN|CKPT")
@click.option("--count", type=int, required=True, help="images to generate")
@click.option("--out", required=True, help="folder to write the kept images to")
@click.option("--min-nn-distance", type=float, default=None, metavar="X",
              help="drop samples closer than X (RMS pixel difference, 0-1) to a training "
              "image  [default: the memorisation threshold, half the median distance between "
              "training images and their nearest neighbours]")
@click.option("--min-d-score", type=float, default=None, metavar="Y",
              help="drop samples the run's discriminator scores below Y (its logit)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--runs", default="runs", show_default=True, help="where runs live")
@click.option("--device", default="auto", show_default=True)
@click.option("--trust", is_flag=True, help="allow checkpoints that need pickle code execution")
@click.pass_context
def data_expand_command(ctx, run, count, out, min_nn_distance, min_d_score, seed, runs, device,
                        trust):
    """Write a trained model's images as a new data set, without near-copies of its training
    images (and, with --min-d-score, without those its discriminator finds least real);
    train on both with --data REAL+OUT."""
    reg = registry_from(ctx)
    path = resolve_checkpoint(run, Path(runs))
    loaded = load_model(path, trust=trust, device=pick_device(device), registry=reg)
    report = expand(loaded.model, training_data(loaded.data["train"], reg),
                    ExpandOptions(count, Path(out), min_nn_distance, min_d_score, seed))
    click.echo(report.line())


@cli.group("experiment")
def experiment_group() -> None:
    """Protocols that train and score several runs (ganzoo experiment small-data)."""


@experiment_group.command("small-data", context_settings={"ignore_unknown_options": True,
                                                          "allow_extra_args": True})
@click.option("--arch", required=True, help="architecture to train; its options follow "
              "(e.g. --arch wgan-gp --dim 32)")
@click.option("--data", required=True, metavar="SPEC", help="labelled data set; its first "
              "--images images are the small set")
@click.option("--images", type=int, default=10, show_default=True, help="N: the small set")
@click.option("--pretrain", metavar="SPEC", default=None,
              help="pre-training data  [default: the data set after its first 2N images]")
@click.option("--kimg", type=float, default=5.0, show_default=True, help="budget of each arm")
@click.option("--pretrain-kimg", type=float, default=10.0, show_default=True)
@click.option("--resolution", type=int, default=32, show_default=True)
@click.option("--batch", type=int, default=None, help="[default: the architecture's]")
@click.option("--freeze-d", type=int, default=0, show_default=True,
              help="D blocks frozen in the pretrained arms")
@click.option("--seeds", default="0", show_default=True, metavar="LIST",
              help="run the protocol once per seed (e.g. 0-2); the table gives mean and "
              "spread")
@click.option("--arms", default=None, metavar="LIST", help="only these arms, e.g. "
              "scratch,scratch+diffaug  [default: all]")
@click.option("--augment", "augment", type=click.Choice(["diffaug", "ada"]), default="diffaug",
              show_default=True, help="augmentation of the pretrained+AUG arm")
@click.option("--arm-ada-kimg", type=float, default=None,
              help="--ada-kimg of the ADA arm  [default: --kimg]")
@click.option("--arm-lecam", type=float, default=0.0, show_default=True,
              help="--lecam weight of the augmented arms")
@click.option("--out", default="experiments/small-data", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.pass_context
def small_data_command(ctx, arch, data, images, pretrain, kimg, pretrain_kimg, resolution,
                       batch, freeze_d, seeds, arms, augment, arm_ada_kimg, arm_lecam, out,
                       device):
    """The thesis' small-data protocol: from scratch (plain, DiffAugment, ADA), pre-trained
    then fine-tuned (plain, augmented), expanded with images generated by the best arm, and
    2N real images, with the same budget each, over --seeds; writes table.md (FID on the
    domain extractor, memorisation rate: mean, spread, per seed), results.json and a grid
    per arm to --out."""
    reg = registry_from(ctx)
    arch_options = architecture_options(reg.architecture(arch), ctx.args)
    setup = SmallDataSetup(arch, data, images, pretrain, kimg, pretrain_kimg, resolution, batch,
                           freeze_d, tuple(parse_seeds(seeds)), Path(out), device,
                           arch_options, tuple(arms.split(",")) if arms else None, augment,
                           arm_ada_kimg, arm_lecam)
    SmallDataExperiment(setup, reg, log=click.echo).run()
    click.echo((Path(out) / "table.md").read_text())


def architecture_options(cls: type[Architecture], args: list[str]) -> dict:
    """The architecture options among ``args`` (those given only), parsed as `ganzoo train
    ARCH` parses them; anything else is a usage error naming it."""
    command = click.Command(f"small-data --arch {cls.name}", params=config_options(cls.Config))
    with command.make_context(command.name, list(args)) as sub:
        return {k: v for k, v in sub.params.items()
                if sub.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}


@data_group.command("info")
@click.argument("spec")
@click.option("--resolution", type=int, default=64, show_default=True,
              help="prepare at this size (a zip written by `data prepare`: its own size)")
@click.option("--channels", type=int, default=3, show_default=True)
@click.option("--preview", metavar="OUT.png", help="write a grid of examples (per class)")
@click.pass_context
def data_info_command(ctx, spec, resolution, channels, preview):
    """Count, resolution, channels and classes of SPEC; optionally a preview grid."""
    data = resolve_data(spec, prepare_options(resolution, channels), registry_from(ctx))
    click.echo(f"{spec}: {len(data)} images, {data.resolution}x{data.resolution}, "
               f"{'RGB' if data.channels == 3 else 'greyscale'}")
    if data.labels is None:
        click.echo("classes: none (unlabelled)")
    else:
        counts = np.bincount(data.labels, minlength=len(data.class_names))
        click.echo(f"classes: {len(data.class_names)}")
        for k, (name, n) in enumerate(zip(data.class_names, counts)):
            click.echo(f"  {k:4d}  {name:24s} {n:7d}")
    if preview:
        save_image(preview_grid(data), Path(preview))
        click.echo(f"wrote {preview}")


# -- train ------------------------------------------------------------------------------------

@dataclasses.dataclass
class LaunchOptions:
    """Options of `ganzoo train ARCH` that say how to start, not what to train."""

    resume: str | None = ganzoo.option(None, "continue a run from its newest (or the given) "
                                       "checkpoint", metavar="latest|RUN|CKPT")
    trust: bool = ganzoo.option(False, "allow checkpoints that need pickle code execution",
                                switch=True)
    quiet: bool = ganzoo.option(False, "no progress line", switch=True, aliases=("-q",))
    gpus: int = ganzoo.option(1, "train data-parallel in N processes on this machine, one per "
                              "GPU (N CPU processes with --device cpu); --batch stays the "
                              "global minibatch. Several machines: torchrun -m ganzoo train "
                              "...", metavar="N")


# The names no architecture option may take.
TRAINER_OPTIONS = {f.name for f in dataclasses.fields(TrainConfig)}
LAUNCH_OPTIONS = {f.name for f in dataclasses.fields(LaunchOptions)}


class TrainGroup(click.Group):
    """`ganzoo train ARCH`: one subcommand per registered architecture, built on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(registry_from(ctx).architectures())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        reg = registry_from(ctx)
        cls = reg.architecture(name)   # unknown names: GanzooError with suggestions
        return make_train_command(cls, reg)

    def format_commands(self, ctx, formatter):
        rows = []
        for name, r in sorted(registry_from(ctx).architectures().items()):
            rows.append((name, (r.obj.__doc__ or "").strip().split("\n")[0]))
        with formatter.section("Architectures"):
            formatter.write_dl(rows)


@cli.group("train", cls=TrainGroup)
def train_group() -> None:
    """Train an architecture: ganzoo train ARCH --data SPEC [options].

    `ganzoo train ARCH --help` shows that architecture's options.
    """


def make_train_command(cls: type[Architecture], reg: Registry) -> click.Command:
    arch_options = config_options(cls.Config)
    clash = {o.name for o in arch_options} & (TRAINER_OPTIONS | LAUNCH_OPTIONS)
    if clash:
        raise GanzooError(f"architecture {cls.name}: Config field(s) {', '.join(sorted(clash))}"
                          " collide with trainer options")
    defaults = TrainConfig(data=None, kimg=cls.default_kimg)
    # None reaches the trainer, which asks the model (its options may decide: --cfg).
    batch_default = cls.default_batch if cls.preferred_batch is Architecture.preferred_batch \
        else "from the architecture's options"
    common = (config_options(TrainConfig, defaults, {"batch_default": batch_default})
              + config_options(LaunchOptions))

    def callback(**params):
        ctx = click.get_current_context()
        code = run_train(cls, reg, params, ctx)
        if code:
            ctx.exit(code)

    return click.Command(cls.name, params=common + arch_options, callback=callback,
                         help=(cls.__doc__ or "").strip(), no_args_is_help=False)


def run_train(cls: type[Architecture], reg: Registry, params: dict, ctx: click.Context) -> int:
    given = {k for k in params
             if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
    arch_fields = {f.name for f in dataclasses.fields(cls.Config)}
    quiet = params.pop("quiet")
    trust = params.pop("trust")
    resume_ref = params.pop("resume")
    gpus = params.pop("gpus")
    ranks = Rank.from_env()
    if gpus != 1 and not ranks.distributed:
        argv = (ctx.obj or {}).get("argv", sys.argv[1:])
        return launch_processes(gpus, params["device"], argv)
    restarted = False
    if ranks.distributed:       # joined before anything is decided, so rank 0 can decide
        distributed.start(ranks, pick_device(params["device"]))
        if not resume_ref and restarted_by_torchrun():
            resume_ref = resume_after_restart(ranks, Path(params["out"]))
            restarted = resume_ref is not None
    request = TrainRequest(cls, {k: params[k] for k in TRAINER_OPTIONS},
                           {k: params[k] for k in arch_fields}, given, resume_ref, trust)
    prepared = plan(request, reg)
    if ranks.is_main and not restarted:
        for warning in prepared.warnings:
            click.echo(f"warning: {warning}", err=True)
    try:
        trainer = make_trainer(request, reg, quiet=quiet, plan_=prepared)
        trainer.run()
        code = 0
    except Stop as stop:
        if trainer.is_main:
            click.echo(str(stop), err=True)
        code = 128 + (trainer.stop_signal or 0)
    except BaseException:
        distributed.stop()        # a failed rank: the others may be gone, do not wait
        raise
    distributed.stop(wait=True)
    return code


def resume_after_restart(ranks: Rank, out: Path) -> str | None:
    """After torchrun --max-restarts restarted the workers: the run this job was training
    (rank 0 looks, every rank gets its answer), or None if it saved no checkpoint yet."""
    run = distributed.broadcast_object(elastic_run(out) if ranks.is_main else None)
    if run and ranks.is_main:
        click.echo(f"torchrun restart {os.environ.get('TORCHELASTIC_RESTART_COUNT')}: "
                   f"resuming {run}", err=True)
    return run


def without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` less ``--name VALUE`` / ``--name=VALUE``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def launch_processes(n: int, device: str, argv: list[str]) -> int:
    """``ganzoo train --gpus N``: the same command in N processes through torch.distributed's
    launcher (what torchrun --standalone does)."""
    if n < 1:
        raise GanzooError(f"--gpus must be >= 1, got {n}")
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        have = torch.cuda.device_count()
        if n > have:
            raise GanzooError(f"--gpus {n}: this machine has {have} CUDA device(s)"
                              + ("" if have else "; use --device cpu for CPU processes"))
    elif device == "auto":
        raise GanzooError(f"--gpus {n}: no CUDA device is available; add --device cpu to "
                          f"train in {n} CPU processes")
    return distributed.launch(n, without_option(argv, "--gpus"))


# -- generate ---------------------------------------------------------------------------------

# Seeds per call: 0-1000000 is fine (images are written as they are made, the seeds kept as
# ranges); a range longer than this is taken for a typo (it would run for days).
MAX_SEEDS = 10_000_000
# Images one --grid may hold: 32x32 of them is already 8192 px wide at 256 px.
MAX_GRID_IMAGES = 1024


class Seeds(collections.abc.Sequence):
    """The seeds --seeds names, kept as ranges: 0-1000000 takes no memory."""

    def __init__(self, ranges: list[range]):
        self.ranges = ranges

    def __len__(self) -> int:
        return sum(len(r) for r in self.ranges)

    def __iter__(self):
        return itertools.chain.from_iterable(self.ranges)

    def __getitem__(self, index: int) -> int:
        for r in self.ranges:
            if index < len(r):
                return r[index]
            index -= len(r)
        raise IndexError(index)

    def __eq__(self, other) -> bool:
        return isinstance(other, collections.abc.Sequence) and list(self) == list(other)


def parse_seeds(text: str) -> Seeds:
    """'0-3,7' -> the seeds 0, 1, 2, 3, 7."""
    ranges: list[range] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                ranges.append(range(lo_i, hi_i + 1))
            else:
                ranges.append(range(int(part), int(part) + 1))
    except ValueError:
        raise GanzooError(f"--seeds {text!r}: expected numbers and ranges like 0-15,20")
    if any(r.start < 0 or r.stop > SEED_LIMIT for r in ranges):
        raise GanzooError(f"--seeds {text!r}: seeds must be in 0-{SEED_LIMIT - 1}")
    seeds = Seeds(ranges)
    if len(seeds) > MAX_SEEDS:
        raise GanzooError(f"--seeds {text!r}: {len(seeds)} seeds; at most {MAX_SEEDS:,} per "
                          "call")
    return seeds


def require_conditional(model: Architecture, where: str) -> None:
    if not model.conditional:
        raise GanzooError(f"--class: {model.name} ({where}) is unconditional; "
                          f"{model.unconditional_hint}")


def parse_class(text: str, model: Architecture, where: str) -> int:
    """A class index or name -> index; anything else names the valid classes."""
    require_conditional(model, where)
    names = model.data.class_names
    valid = ", ".join(f"{i}={n}" for i, n in enumerate(names)) or \
        f"0-{model.data.num_classes - 1}"
    if text in names:
        return names.index(text)
    try:
        k = int(text)
    except ValueError:
        k = -1
    if not 0 <= k < model.data.num_classes:
        raise GanzooError(f"--class {text}: no such class; valid classes: {valid}")
    return k


class GenerateCommand(click.Command):
    """`ganzoo generate [ARCH]`: when ARCH declares a GenerateConfig, its fields join the
    options for this call (so `ganzoo generate deepdream --help` lists them too)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        self.params = [p for p in self.params if not getattr(p, "from_architecture", False)]
        if args and not args[0].startswith("-"):
            cls = registry_from(ctx).architecture(args[0])   # unknown: error with suggestions
            extra = config_options(cls.GenerateConfig) if cls.GenerateConfig else []
            clash = {o.name for o in extra} & {p.name for p in self.params}
            if clash:
                raise GanzooError(f"architecture {cls.name}: GenerateConfig field(s) "
                                  f"{', '.join(sorted(clash))} collide with generate options")
            for option in extra:
                option.from_architecture = True
            self.params = self.params + extra
        return super().parse_args(ctx, args)


def generate_with_options(cls: type[Architecture], request: GenerateRequest, values: dict,
                          gan_options: dict) -> None:
    """Hand `ganzoo generate ARCH` to an architecture that declares a GenerateConfig."""
    for flag, value in gan_options.items():
        if value is not None and value is not False:
            raise GanzooError(f"{flag} does not apply to {cls.name} (see `ganzoo generate "
                              f"{cls.name} --help`)")
    names = [f.name for f in dataclasses.fields(cls.GenerateConfig)]
    config = cls.GenerateConfig(**{k: values[k] for k in names})
    check_config(config)
    paths = cls.generate_files(request, config)
    click.echo(f"wrote {', '.join(str(p) for p in paths)}")


@cli.command("generate", cls=GenerateCommand)
@click.argument("arch", required=False)
@click.option("--checkpoint", "ckpt_ref", default=None, metavar="latest|RUN|CKPT",
              help="which run or checkpoint to sample  [default: latest]")
@click.option("--seeds", "--seed", default=None,
              help="e.g. 0-15,20  [default: 0-15; deepdream: 0]")
@click.option("--class", "class_", metavar="K|NAME|all", help="class index or name "
              "(conditional models); 'all' writes a grid with one class per column")
@click.option("--trunc", type=float, default=None, help="truncation psi (style-based models)")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default=None,
              help="per-pixel noise inputs (style-based models)  [default: the model's]")
@click.option("--grid", is_flag=True, help="write one grid instead of one file per seed")
@click.option("--projected", metavar="W.npz", default=None,
              help="render a latent `ganzoo project` wrote (instead of seeds)")
@click.option("--out", default="generated", show_default=True, help="output directory")
@click.option("--runs", default="runs", show_default=True, help="where runs live")
@click.option("--device", default="auto", show_default=True)
@click.option("--trust", is_flag=True, help="allow checkpoints that need pickle code execution")
@click.pass_context
def generate_command(ctx, arch, ckpt_ref, seeds, class_, trunc, noise_mode, grid, projected,
                     out, runs, device, trust, **arch_options):
    """Sample images from a trained model (default: the newest run under ./runs).

    `ganzoo generate ARCH --help` also lists ARCH's own options (deepdream: --input, --layer...).
    """
    reg = registry_from(ctx)
    cls = reg.architecture(arch) if arch else None   # unknown names: error with suggestions
    if cls is not None and cls.GenerateConfig is not None:
        request = GenerateRequest(ckpt_ref, Path(runs), None if seeds is None else
                                  parse_seeds(seeds), Path(out), pick_device(device), trust, reg)
        generate_with_options(cls, request, arch_options,
                              {"--class": class_, "--trunc": trunc, "--noise-mode": noise_mode,
                               "--grid": grid})
        return
    seed_list = parse_seeds(seeds or "0-15")
    path = resolve_checkpoint(ckpt_ref or "latest", Path(runs), arch=arch)
    loaded = load_model(path, trust=trust, device=pick_device(device), registry=reg,
                        expect_arch=arch)
    model = loaded.model
    if model.GenerateConfig is not None:
        raise GanzooError(f"{path} is a {model.name} checkpoint, which takes its own options: "
                          f"see `ganzoo generate {model.name} --help`")
    if projected is not None:
        write_projected(model, Path(projected), Path(out), path,
                        {"--seeds": seeds, "--class": class_, "--trunc": trunc,
                         "--noise-mode": noise_mode, "--grid": grid or None})
        return
    options = {}
    if trunc is not None:
        if not model.supports_truncation:
            raise GanzooError(f"--trunc: {model.name} does not support truncation")
        options["truncation_psi"] = trunc
    if noise_mode is not None:
        if not model.supports_noise_mode:
            raise GanzooError(f"--noise-mode: {model.name} has no noise inputs")
        options["noise_mode"] = noise_mode
    if class_ == "all":                  # one class per column, one seed per row
        require_conditional(model, str(path))
        write_grid(model, seed_list, list(range(model.data.num_classes)), options, Path(out),
                   path, titles=model.data.class_names)
    else:
        k = None if class_ is None else parse_class(class_, model, str(path))
        if grid:
            write_grid(model, seed_list, [k], options, Path(out), path)
        else:
            write_files(model, seed_list, k, options, Path(out), path)


def sample(model: Architecture, seed: int, k: int | None, options: dict) -> torch.Tensor:
    """One image: seed ``seed``, class ``k`` (None: the model's choice)."""
    labels = None if k is None else torch.tensor([k], device=model.device)
    return model.generate(1, seed=seed, **options, labels=labels)


def write_files(model: Architecture, seeds: Seeds, k: int | None, options: dict,
                out_dir: Path, path: Path) -> None:
    """One PNG per seed, each written as soon as it is made: a long call keeps no images in
    memory, and an interrupted one keeps what it wrote."""
    suffix = "" if k is None else f"-class{k}"
    for s in seeds:
        save_image(grid_image(sample(model, s, k, options), 1),
                   out_dir / f"seed{s:04d}{suffix}.png")
    click.echo(f"wrote {len(seeds)} images to {out_dir}/ (from {path})")


def write_grid(model: Architecture, seeds: Seeds, classes: list, options: dict, out_dir: Path,
               path: Path, titles: tuple[str, ...] = ()) -> None:
    """One grid: a column per class with ``titles``, else a square of seeds."""
    count = len(seeds) * len(classes)
    if count > MAX_GRID_IMAGES:
        raise GanzooError(f"--grid: {count} images; a grid holds at most {MAX_GRID_IMAGES} "
                          "(fewer --seeds, or leave out --grid for one file per seed)")
    images = torch.cat([sample(model, s, k, options) for s in seeds for k in classes])
    cols = len(classes) if titles else math.ceil(math.sqrt(len(seeds)))
    save_image(grid_image(images, cols, col_titles=titles), out_dir / "grid.png")
    click.echo(f"wrote {out_dir / 'grid.png'} ({len(images)} images from {path})")


def write_projected(model: Architecture, npz: Path, out_dir: Path, path: Path,
                    others: dict) -> None:
    """`generate --projected W.npz`: the projected latent (and its noise maps) rendered."""
    from ganzoo.explore import load_latent, render_saved
    given = [flag for flag, value in others.items() if value is not None]
    if given:
        raise GanzooError(f"--projected renders the saved latent; {', '.join(given)} "
                          "do(es) not apply")
    image = render_saved(model, load_latent(npz, model))
    target = out_dir / f"{npz.stem}.png"
    save_image(grid_image(image, 1), target)
    click.echo(f"wrote {target} (from {npz} and {path})")


# -- exploring a generator: video, mix, truncation, project ---------------------------------

def load_for(ctx, ckpt_ref: str, runs: str, device: str, trust: bool):
    """The model a checkpoint (or run, or official pickle) holds, for the explore tools."""
    path = resolve_checkpoint(ckpt_ref, Path(runs))
    return load_model(path, trust=trust, device=pick_device(device),
                      registry=registry_from(ctx))


def explore_class(model: Architecture, class_: str | None, path) -> int | None:
    return None if class_ is None else parse_class(class_, model, str(path))


def parse_grid(text: str) -> tuple[int, int]:
    """'2x3' -> (2, 3)."""
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise GanzooError(f"--grid {text!r}: expected ROWSxCOLS, e.g. 2x3")
    if rows < 1 or cols < 1 or rows * cols > MAX_GRID_IMAGES:
        raise GanzooError(f"--grid {text!r}: rows and columns >= 1, at most "
                          f"{MAX_GRID_IMAGES} cells")
    return rows, cols


def checkpoint_options(f):
    """--checkpoint, --runs, --device, --trust: every explore command loads a model."""
    for option in reversed([
            click.option("--checkpoint", "ckpt_ref", default="latest",
                         metavar="latest|RUN|CKPT", show_default=True,
                         help="run, checkpoint or official network pickle"),
            click.option("--runs", default="runs", show_default=True, help="where runs live"),
            click.option("--device", default="auto", show_default=True),
            click.option("--trust", is_flag=True,
                         help="allow checkpoints that need pickle code execution")]):
        f = option(f)
    return f


@cli.command("video")
@click.argument("arch", required=False)
@checkpoint_options
@click.option("--seeds", default="0-7", show_default=True, help="keyframes, dealt to the "
              "grid's cells in order")
@click.option("--kind", type=click.Choice(["interpolate", "walk"]), default="interpolate",
              show_default=True, help="straight (slerp in z, lerp in W) or a smooth loop "
              "through the seeds")
@click.option("--frames-per-seed", type=int, default=30, show_default=True)
@click.option("--grid", "grid_text", default="1x1", show_default=True, metavar="RxC")
@click.option("--class", "class_", metavar="K|NAME", help="class (conditional models)")
@click.option("--trunc", type=float, default=1.0, show_default=True,
              help="truncation psi (style-based models)")
@click.option("--fps", type=float, default=30.0, show_default=True)
@click.option("--out", default="video.mp4", show_default=True,
              help=".mp4 (imageio-ffmpeg), .gif or .webp (Pillow)")
@click.pass_context
def video_command(ctx, arch, ckpt_ref, runs, device, trust, seeds, kind, frames_per_seed,
                  grid_text, class_, trunc, fps, out):
    """A looping interpolation video through the seeds' latents."""
    from ganzoo.explore import VideoOptions, make_video
    from ganzoo.explore.encode import check_video_path
    check_video_path(Path(out))
    options = VideoOptions(parse_seeds(seeds), kind, frames_per_seed, parse_grid(grid_text),
                           None, trunc, fps)
    loaded = load_for(ctx, ckpt_ref, runs, device, trust)
    check_arch(loaded, arch)
    options = dataclasses.replace(options,
                                  class_index=explore_class(loaded.model, class_, loaded.path))
    r = make_video(loaded.model, options, Path(out))
    click.echo(f"wrote {r.path}: {r.frames} frames, {r.width}x{r.height}, {r.fps:g} fps "
               f"(from {loaded.path})")


def check_arch(loaded, arch: str | None) -> None:
    if arch is not None and loaded.model.name != arch:
        raise GanzooError(f"{loaded.path} is a {loaded.model.name} checkpoint, not {arch}")


@cli.command("mix")
@click.argument("arch", required=False)
@checkpoint_options
@click.option("--rows", default="0-5", show_default=True, help="seeds whose --styles "
              "layers (coarse: pose, shape) each row takes")
@click.option("--cols", default="10-14", show_default=True, help="seeds that give the rest")
@click.option("--styles", default=None, help="layers taken from the row seeds  [default: "
              "0-3, the 4x4 and 8x8 layers]")
@click.option("--class", "class_", metavar="K|NAME", help="class (conditional models)")
@click.option("--trunc", type=float, default=1.0, show_default=True)
@click.option("--out", default="mix.png", show_default=True)
@click.pass_context
def mix_command(ctx, arch, ckpt_ref, runs, device, trust, rows, cols, styles, class_, trunc,
                out):
    """The style-mixing grid: column seeds on top, row seeds on the left."""
    from ganzoo.explore import MixOptions, style_mix
    row_seeds, col_seeds = parse_seeds(rows), parse_seeds(cols)
    style_list = None if styles is None else list(parse_seeds(styles))
    if (len(row_seeds) + 1) * (len(col_seeds) + 1) > MAX_GRID_IMAGES:
        raise GanzooError(f"mix: a grid holds at most {MAX_GRID_IMAGES} images")
    loaded = load_for(ctx, ckpt_ref, runs, device, trust)
    check_arch(loaded, arch)
    grid = style_mix(loaded.model, MixOptions(list(row_seeds), list(col_seeds), style_list,
                                              explore_class(loaded.model, class_, loaded.path),
                                              trunc))
    save_image(grid.image(), Path(out))
    click.echo(f"wrote {out}: {len(row_seeds)} rows x {len(col_seeds)} columns, styles "
               f"{','.join(map(str, grid.styles))} from the rows (from {loaded.path})")


@cli.command("truncation")
@click.argument("arch", required=False)
@checkpoint_options
@click.option("--seeds", default="0-7", show_default=True, help="one row each")
@click.option("--psi", "psi_text", default="-1,-0.5,0,0.5,0.7,1", show_default=True,
              help="one column each")
@click.option("--class", "class_", metavar="K|NAME", help="class (conditional models)")
@click.option("--out", default="truncation.png", show_default=True)
@click.pass_context
def truncation_command(ctx, arch, ckpt_ref, runs, device, trust, seeds, psi_text, class_, out):
    """A truncation sweep: one row per seed, one column per psi."""
    from ganzoo.explore import TruncationOptions, truncation_sweep
    from ganzoo.explore.truncation import parse_psis
    seed_list, psis = parse_seeds(seeds), parse_psis(psi_text)
    if len(seed_list) * len(psis) > MAX_GRID_IMAGES:
        raise GanzooError(f"truncation: a grid holds at most {MAX_GRID_IMAGES} images")
    loaded = load_for(ctx, ckpt_ref, runs, device, trust)
    check_arch(loaded, arch)
    sweep = truncation_sweep(loaded.model, TruncationOptions(
        list(seed_list), psis, explore_class(loaded.model, class_, loaded.path)))
    save_image(sweep.image(), Path(out))
    click.echo(f"wrote {out}: {len(seed_list)} seeds x psi {psi_text} (from {loaded.path})")


@cli.command("project")
@click.argument("arch", required=False)
@checkpoint_options
@click.option("--target", required=True, metavar="PHOTO", help="the image to match")
@click.option("--steps", type=int, default=1000, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--extractor", default="auto", show_default=True, metavar="auto|none|NAME",
              help="feature network in the distance; auto: the domain extractor when the "
              "run's data has labels, else pixels only")
@click.option("--feature-weights", metavar="PATH", help="weights file for an extractor "
              "that takes one (a VGG16/LPIPS-style network you have)")
@click.option("--feature-lambda", type=float, default=1.0, show_default=True,
              help="weight of the feature distance against pixel MSE")
@click.option("--class", "class_", metavar="K|NAME", help="class (conditional models)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--save-video", is_flag=True, help="also write the optimisation as a video "
              "(proj.mp4; proj.gif without imageio-ffmpeg)")
@click.option("--out", default="projected", show_default=True, help="output directory")
@click.pass_context
def project_command(ctx, arch, ckpt_ref, runs, device, trust, target, steps, lr, extractor,
                    feature_weights, feature_lambda, class_, seed, save_video, out):
    """Find the latent (W for style-based G, z otherwise) whose image matches PHOTO."""
    from ganzoo.explore.project_files import ProjectRequest, run_projection
    request = ProjectRequest(Path(target), steps, lr, extractor, feature_weights,
                             feature_lambda, class_, seed, save_video, Path(out))
    loaded = load_for(ctx, ckpt_ref, runs, device, trust)
    check_arch(loaded, arch)
    for line in run_projection(loaded, request, registry_from(ctx)):
        click.echo(line)


@cli.command("convert")
@click.argument("source", metavar="NETWORK")
@click.option("--out", required=True, metavar="PATH.pt", help="the ganzoo checkpoint to write")
@click.option("--trust", is_flag=True, help="allow a ganzoo checkpoint that needs pickle "
              "code execution (official network pickles never need it)")
@click.pass_context
def convert_command(ctx, source, out, trust):
    """Write NETWORK as a ganzoo checkpoint that loads with weights_only.

    NETWORK: an official StyleGAN2-ADA pickle (network-snapshot-NNNNNN.pkl, a pretrained
    network), read without running code from it, or any checkpoint ganzoo reads (an old
    one is written in the current layout).
    """
    from ganzoo.atomic import atomic_write
    from ganzoo.checkpoint import build_model
    reg = registry_from(ctx)
    data = read_checkpoint(Path(source), trust=trust, registry=reg)
    data = reg.architecture(data["architecture"]).upgrade_checkpoint(data)
    model = build_model(data, torch.device("cpu"), reg, path=Path(source))   # it must load
    with atomic_write(Path(out)) as f:
        torch.save(data, f)
    res, kimg = model.data.resolution, data["progress"]["images"] / 1000
    click.echo(f"wrote {out}: {model.name}, {res}x{res}, "
               f"{model.data.num_classes or 'no'} classes, kimg {kimg:g}")


# -- entry point --------------------------------------------------------------------------------

def add_plugin_commands(argv: list[str]) -> None:
    """Let plugins add commands (ganzoo_commands hook); failures are recorded, not fatal.
    The --plugin modules are read from ``argv`` as click will parse them (before the command)."""
    try:
        ctx = cli.make_context("ganzoo", list(argv), resilient_parsing=True)
        extra = ctx.params.get("plugin") or ()
    except click.exceptions.ClickException:   # a usage error: cli.main says which
        extra = ()
    get_registry(extra).add_commands(cli)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("GANZOO_DEBUG") == "1"
    try:
        add_plugin_commands(argv)
        code = cli.main(args=argv, prog_name="ganzoo", standalone_mode=False,
                        obj={"argv": argv})   # --gpus relaunches the command
        if isinstance(code, int) and code:   # ctx.exit(N) comes back as a return value
            sys.exit(code)
    except GanzooError as e:
        click.echo(f"error: {e}", err=True)
        if debug:
            raise
        sys.exit(1)
    except getattr(click.exceptions, "NoArgsIsHelpError", ()) as e:
        click.echo(e.format_message())   # bare `ganzoo` or `ganzoo train`: show the help
        sys.exit(0)
    except click.exceptions.UsageError as e:
        command = e.ctx.command_path if e.ctx else "ganzoo"
        click.echo(f"error: {e.format_message()} (see '{command} --help')", err=True)
        sys.exit(2)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort as e:
        # click turns Ctrl-C into Abort; it still exits 130, as an interrupted program should
        if isinstance(e.__cause__, KeyboardInterrupt):
            click.echo("interrupted", err=True)
            sys.exit(130)
        click.echo("aborted", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as e:
        if e.errno not in FULL or debug:
            raise_internal(e, debug)
        # A write outside atomic_write (a mkdir, a download): it names the path if it has one.
        click.echo(f"error: {disk_full_message(e.filename or '.')}", err=True)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - a bug: one line, traceback only on request
        raise_internal(e, debug)


def raise_internal(e: Exception, debug: bool) -> None:
    """A bug: one line and exit 1; the traceback only with --debug."""
    if debug:
        raise e
    msg = str(e).strip().splitlines()
    click.echo(f"internal error: {type(e).__name__}: {msg[0] if msg else ''} "
               "(run with --debug for the traceback)", err=True)
    sys.exit(1)
