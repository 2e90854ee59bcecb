"""`ganzoo convert`: any network ganzoo reads (an official StyleGAN2-ADA pickle, an old
checkpoint) written as a current checkpoint that loads with weights_only."""
from __future__ import annotations

from pathlib import Path

import click
import torch

from ganzoo.checkpoint import read_checkpoint
from ganzoo.cli.group import cli, registry_from


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
