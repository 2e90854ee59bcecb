"""`ganzoo plugin new`, registered through the "ganzoo" entry point (builtin-scaffold) like
any plugin's commands."""
from __future__ import annotations

from pathlib import Path

import click

from ganzoo.hookspecs import hookimpl


@hookimpl
def ganzoo_commands(cli):
    cli.add_command(plugin_group)


@click.group("plugin")
def plugin_group():
    """Write your own plugin: `ganzoo plugin new NAME`."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--template", type=click.Choice(["gan", "minimal"]), default="gan",
              show_default=True, help="gan: a DCGAN-style G/D on GANArchitecture; minimal: "
              "the bare Architecture methods")
@click.option("--out", default=".", show_default=True, help="folder to write NAME/ in")
def new_command(name: str, template: str, out: str) -> None:
    """Write a pip-installable plugin package NAME/ whose tests (the ganzoo contract) pass."""
    from ganzoo.scaffold import PluginSpec, write_package
    root = write_package(PluginSpec(name, template), Path(out))
    click.echo(f"wrote {root}/ ({template} template). Next:\n"
               f"  pip install -e {root}\n"
               f"  pytest {root}\n"
               f"  ganzoo train {name} --data shapes --resolution 16 --kimg 1")
