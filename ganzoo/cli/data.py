"""`ganzoo data`: fetch, prepare, info and expand, the commands that work on data sets
rather than on runs (expand reads a run, but what it makes is a data set)."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ganzoo.checkpoint import load_model, resolve_checkpoint
from ganzoo.cli.group import cli, registry_from
from ganzoo.data import (DatasetSource, ImageSet, PrepareOptions, find_source, resolve_data,
                         unknown_data)
from ganzoo.data.prepare import RESIZE_FILTERS, check_options
from ganzoo.data.zipset import write_zip
from ganzoo.errors import GanzooError
from ganzoo.expand import ExpandOptions, expand, training_data
from ganzoo.trainer import pick_device
from ganzoo.viz import grid_image, save_image


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
