"""Every hook a ganzoo plugin can implement.

Plugins are modules (or objects) registered with the pluggy project "ganzoo", found through the
entry-point group "ganzoo". The hooks follow datasette's `register_*` style: they return
classes or descriptions, never running instances, and every name they register must be unique
across all plugins (a duplicate is an error naming both plugins).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from ganzoo.architecture import Architecture
    from ganzoo.data.source import DatasetSource
    from ganzoo.features import FeatureExtractor
    from ganzoo.importers import CheckpointImporter

hookspec = pluggy.HookspecMarker("ganzoo")
hookimpl = pluggy.HookimplMarker("ganzoo")


# -- models ---------------------------------------------------------------------------------

@hookspec
def ganzoo_architectures() -> list[type[Architecture]]:
    """Register trainable (or sampling-only) image generators.

    :return: Architecture subclasses. Each one's ``name`` becomes the CLI name
        (``ganzoo train NAME``) and its ``Config`` dataclass becomes that command's options.
    """


# -- data -----------------------------------------------------------------------------------

@hookspec
def ganzoo_datasets() -> list[DatasetSource]:
    """Register named data sets that ``--data NAME`` resolves to.

    :return: DatasetSource instances. A source whose ``name`` ends in ``/`` (for example
        ``places/``) handles every spec that starts with it (``places/corridor``).
    """


# -- evaluation and feature backbones --------------------------------------------------------

@hookspec
def ganzoo_feature_extractors() -> list[type[FeatureExtractor]]:
    """Register image feature networks, used by metrics (FID, KID, ...) and DeepDream.

    :return: FeatureExtractor subclasses, each with a unique ``name``.
    """


# -- other projects' checkpoints ------------------------------------------------------------

@hookspec
def ganzoo_checkpoint_importers() -> list[CheckpointImporter]:
    """Register readers of other projects' network pickles (see :mod:`ganzoo.importers`).

    :return: CheckpointImporter instances, each with a unique ``name``. They receive the
        pickle as plain data (ganzoo never runs code from it) and return a ganzoo
        checkpoint's data.
    """


# -- command line ----------------------------------------------------------------------------

@hookspec
def ganzoo_commands(cli: click.Group) -> None:
    """Add commands to the ``ganzoo`` command line.

    :param cli: the top-level click group; call ``cli.add_command(...)`` or decorate with
        ``@cli.command()``. Command names must not collide with built-in ones.
    """
