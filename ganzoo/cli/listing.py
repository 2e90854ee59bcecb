"""What is installed: `ganzoo list` (architectures and data sets) and `ganzoo plugins`."""
from __future__ import annotations

import click

from ganzoo.cli.group import cli, registry_from
from ganzoo.errors import GanzooError


@cli.command("list")
@click.pass_context
def list_command(ctx: click.Context) -> None:
    """List architectures and data sets."""
    reg = registry_from(ctx)
    click.echo("Architectures:")
    for name, r in sorted(reg.architectures().items()):
        click.echo(f"  {name:16s} {architecture_line(r)}")
    click.echo("Data sets:")
    for name, r in sorted(reg.datasets().items()):
        click.echo(f"  {name:16s} {r.obj.description}")
    broken = [p for p in reg.plugins if p.error]
    if broken:
        click.echo(f"({len(broken)} plugin(s) failed to load: see `ganzoo plugins`)")


def architecture_line(r) -> str:
    """The first docstring line of a registered architecture, then its tags."""
    cls = r.obj
    doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
    tags = ["conditional"] if cls.conditional else []
    if cls.resolutions:
        tags.append("res " + "/".join(map(str, cls.resolutions)))
    return f"{doc}  [{', '.join(tags + ['plugin ' + r.plugin.name])}]"


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
