"""The built-in feature extractors and the `eval` and `report` commands, registered through
the "ganzoo" entry point like any plugin."""
from __future__ import annotations

from ganzoo.hookspecs import hookimpl
from ganzoo.metrics.domain import DomainClassifier
from ganzoo.metrics.inception import FIDInceptionV3


@hookimpl
def ganzoo_feature_extractors():
    return [FIDInceptionV3, DomainClassifier]


@hookimpl
def ganzoo_commands(cli):
    from ganzoo.metrics.commands import eval_command, report_command
    cli.add_command(eval_command)
    cli.add_command(report_command)
