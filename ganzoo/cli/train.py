"""`ganzoo train ARCH`: one subcommand per registered architecture, its options generated
from TrainConfig, LaunchOptions and the architecture's Config."""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import click

import ganzoo
from ganzoo import distributed
from ganzoo.architecture import Architecture
from ganzoo.cli.gpus import launch_processes
from ganzoo.cli.group import cli, registry_from
from ganzoo.cli.options import config_options
from ganzoo.distributed import Rank, elastic_run, restarted_by_torchrun
from ganzoo.errors import GanzooError
from ganzoo.launch import TrainRequest, make_trainer, plan
from ganzoo.registry import Registry
from ganzoo.trainer import Stop, TrainConfig, pick_device


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
    """Train with the command's ``params``; the exit code (128+N after stop signal N)."""
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
    if ranks.is_main and not restarted:     # a restarted job warned the first time
        for warning in prepared.warnings:
            click.echo(f"warning: {warning}", err=True)
    return run_trainer(request, reg, quiet, prepared)


def run_trainer(request: TrainRequest, reg: Registry, quiet: bool, prepared) -> int:
    """Run the planned training in this process (one rank of a distributed job, or all of
    it); a stop signal saves and exits 128+N."""
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
