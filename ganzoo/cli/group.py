"""The top-level `ganzoo` click group, which every command module adds its commands to, and
the registry the invocation's --plugin options name."""
from __future__ import annotations

import click

import ganzoo
from ganzoo.registry import Registry, get_registry


def registry_from(ctx: click.Context) -> Registry:
    root = ctx.find_root()
    return get_registry(root.params.get("plugin") or ())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show tracebacks for errors")
@click.option("--plugin", multiple=True, metavar="MODULE",
              help="also load this module as a plugin (repeatable)")
@click.version_option(ganzoo.__version__, prog_name="ganzoo")
@click.pass_context
def cli(ctx: click.Context, debug: bool, plugin: tuple[str, ...]) -> None:
    """ganzoo: a GAN zoo for PyTorch. Architectures are plugins behind one interface."""
