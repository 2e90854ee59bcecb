"""The `ganzoo` command line (click).

Exit codes: 0 done, 1 user error (one readable line; a traceback only with --debug),
2 usage error, 128+N when stopped by signal N (after saving a checkpoint).

Here: main() and the error handling that keeps those promises. The top-level group is in
group.py; each command family is a module that adds its commands to it when imported
(below). Plugins add theirs through the ganzoo_commands hook, as ops, plugin, eval and
report do (ganzoo/ops/commands.py, ganzoo/scaffold/commands.py, ganzoo/metrics/builtin.py).
"""
from __future__ import annotations

import os
import sys

import click

from ganzoo.atomic import FULL, disk_full_message
from ganzoo.errors import GanzooError
from ganzoo.registry import get_registry

# Importing a command module registers its commands on `cli`. Every name ganzoo/cli.py held
# before it was split stays importable from here: tests, ganzoo.testing, ganzoo.metrics and
# ganzoo.explore import some of them, and plugins may.
from ganzoo.cli.group import cli, registry_from
from ganzoo.cli.options import config_options, optional_inner
from ganzoo.cli.arguments import (MAX_GRID_IMAGES, MAX_SEEDS, Seeds, parse_class, parse_seeds,
                                  require_conditional)
from ganzoo.cli.listing import list_command, plugins_command
from ganzoo.cli.data import (data_expand_command, data_fetch_command, data_group,
                             data_info_command, data_prepare_command, prepare_options,
                             preview_grid)
from ganzoo.cli.experiment import architecture_options, experiment_group, small_data_command
from ganzoo.cli.train import (LAUNCH_OPTIONS, TRAINER_OPTIONS, LaunchOptions, TrainGroup,
                              make_train_command, resume_after_restart, run_train, train_group)
from ganzoo.cli.gpus import launch_processes, without_option
from ganzoo.cli.generate import (GenerateCommand, generate_command, generate_with_options,
                                 sample, write_files, write_grid, write_projected)
from ganzoo.cli.explore import (check_arch, checkpoint_options, explore_class, load_for,
                                mix_command, parse_grid, project_command, truncation_command,
                                video_command)
from ganzoo.cli.convert import convert_command


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
