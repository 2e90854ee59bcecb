"""Click options generated from Config dataclasses: `ganzoo train ARCH` (the trainer's,
the launcher's and the architecture's Config), `generate ARCH` (a GenerateConfig) and
`experiment small-data --arch` all build their options here, so a field declares its flag,
type, default and help once."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import click


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
    return [field_option(f, field_default(f, defaults), field_help(f, help_values),
                         optional_inner(hints[f.name]))
            for f in dataclasses.fields(config_cls)]


def field_default(f: dataclasses.Field, defaults: Any) -> Any:
    """The value ``defaults`` holds (per architecture), else the field's own default."""
    if defaults is not None:
        return getattr(defaults, f.name)
    return f.default if f.default is not dataclasses.MISSING else None


def field_help(f: dataclasses.Field, help_values: dict | None) -> str:
    helptext = f.metadata.get("help", "")
    if help_values:
        helptext = helptext.format(**help_values)
    return helptext


def field_option(f: dataclasses.Field, default: Any, helptext: str, kind) -> click.Option:
    """The option for one field: a switch, a --X/--no-X pair, or a typed value."""
    flag = "--" + f.name.replace("_", "-")
    names = [flag, *f.metadata.get("aliases", ())]
    if kind is bool and f.metadata.get("switch"):
        return click.Option([*names, f.name], is_flag=True, default=default, help=helptext)
    if kind is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}", f.name], default=default,
                            help=helptext, show_default=True)
    extra = {"metavar": f.metadata["metavar"]} if "metavar" in f.metadata else {}
    choices = f.metadata.get("choices")
    ptype = click.Choice(choices) if choices else {int: click.INT, float: click.FLOAT}.get(
        kind, click.STRING)
    return click.Option([*names, f.name], type=ptype, default=default, help=helptext,
                        show_default=True, **extra)
