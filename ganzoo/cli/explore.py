"""Exploring a generator: `ganzoo video`, `mix`, `truncation` and `project`. Each loads a
model from a checkpoint, a run or an official pickle (checkpoint_options) and hands it to
ganzoo.explore, which does the work; here are the options and the lines printed."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from ganzoo.architecture import Architecture
from ganzoo.checkpoint import load_model, resolve_checkpoint
from ganzoo.cli.arguments import MAX_GRID_IMAGES, parse_class, parse_seeds
from ganzoo.cli.group import cli, registry_from
from ganzoo.errors import GanzooError
from ganzoo.trainer import pick_device
from ganzoo.viz import save_image


def load_for(ctx, arch: str | None, ckpt_ref: str, runs: str, device: str, trust: bool):
    """The model a checkpoint (or run, or official pickle) holds, for the explore tools;
    ARCH, when given, must be what it holds."""
    path = resolve_checkpoint(ckpt_ref, Path(runs))
    loaded = load_model(path, trust=trust, device=pick_device(device),
                        registry=registry_from(ctx))
    check_arch(loaded, arch)
    return loaded


def check_arch(loaded, arch: str | None) -> None:
    """ARCH, when given, must be what the checkpoint holds."""
    if arch is not None and loaded.model.name != arch:
        raise GanzooError(f"{loaded.path} is a {loaded.model.name} checkpoint, not {arch}")


def explore_class(model: Architecture, class_: str | None, path) -> int | None:
    return None if class_ is None else parse_class(class_, model, str(path))


def parse_grid(text: str) -> tuple[int, int]:
    """'2x3' -> (2, 3)."""
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise GanzooError(f"--grid {text!r}: expected ROWSxCOLS, e.g. 2x3")
    if rows < 1 or cols < 1 or rows * cols > MAX_GRID_IMAGES:
        raise GanzooError(f"--grid {text!r}: rows and columns >= 1, at most "
                          f"{MAX_GRID_IMAGES} cells")
    return rows, cols


def checkpoint_options(f):
    """--checkpoint, --runs, --device, --trust: every explore command loads a model."""
    for option in reversed([
            click.option("--checkpoint", "ckpt_ref", default="latest",
                         metavar="latest|RUN|CKPT", show_default=True,
                         help="run, checkpoint or official network pickle"),
            click.option("--runs", default="runs", show_default=True, help="where runs live"),
            click.option("--device", default="auto", show_default=True),
            click.option("--trust", is_flag=True,
                         help="allow checkpoints that need pickle code execution")]):
        f = option(f)
    return f


@cli.command("video")
@click.argument("arch", required=False)
@checkpoint_options
@click.option("--seeds", default="0-7", show_default=True, help="keyframes, dealt to the "
              "grid's cells in order")
@click.option("--kind", type=click.Choice(["interpolate", "walk"]), default="interpolate",
              show_default=True, help="straight (slerp in z, lerp in W) or a smooth loop "
              "through the seeds")
@click.option("--frames-per-seed", type=int, default=30, show_default=True)
@click.option("--grid", "grid_text", default="1x1", show_default=True, metavar="RxC")
@click.option("--class", "class_", metavar="K|NAME", help="class (conditional models)")
@click.option("--trunc", type=float, default=1.0, show_default=True,
              help="truncation psi (style-based models)")
@click.option("--fps", type=float, default=30.0, show_default=True)
@click.option("--out", default="video.mp4", show_default=True,
              help=".mp4 (imageio-ffmpeg), .gif or .webp (Pillow)")
@click.pass_context
def video_command(ctx, arch, ckpt_ref, runs, device, trust, seeds, kind, frames_per_seed,
                  grid_text, class_, trunc, fps, out):
    """A looping interpolation video through the seeds' latents."""
    from ganzoo.explore import VideoOptions, make_video
    from ganzoo.explore.encode import check_video_path
    check_video_path(Path(out))
    options = VideoOptions(parse_seeds(seeds), kind, frames_per_seed, parse_grid(grid_text),
                           None, trunc, fps)
    loaded = load_for(ctx, arch, ckpt_ref, runs, device, trust)
    options = dataclasses.replace(options,
                                  class_index=explore_class(loaded.model, class_, loaded.path))
    r = make_video(loaded.model, options, Path(out))
    click.echo(f"wrote {r.path}: {r.frames} frames, {r.width}x{r.height}, {r.fps:g} fps "
               f"(from {loaded.path})")


@cli.command("mix")
@click.argument("arch", required=False)
@checkpoint_options
@click.option("--rows", default="0-5", show_default=True, help="seeds whose --styles "
              "layers (coarse: pose, shape) each row takes")
@click.option("--cols", default="10-14", show_default=True, help="seeds that give the rest")
@click.option("--styles", default=None, help="layers taken from the row seeds  [default: "
              "0-3, the 4x4 and 8x8 layers]")
@click.option("--class", "class_", metavar="K|NAME", help="class (conditional models)")
@click.option("--trunc", type=float, default=1.0, show_default=True)
@click.option("--out", default="mix.png", show_default=True)
@click.pass_context
def mix_command(ctx, arch, ckpt_ref, runs, device, trust, rows, cols, styles, class_, trunc,
                out):
    """The style-mixing grid: column seeds on top, row seeds on the left."""
    from ganzoo.explore import MixOptions, style_mix
    row_seeds, col_seeds = parse_seeds(rows), parse_seeds(cols)
    style_list = None if styles is None else list(parse_seeds(styles))
    if (len(row_seeds) + 1) * (len(col_seeds) + 1) > MAX_GRID_IMAGES:
        raise GanzooError(f"mix: a grid holds at most {MAX_GRID_IMAGES} images")
    loaded = load_for(ctx, arch, ckpt_ref, runs, device, trust)
    grid = style_mix(loaded.model, MixOptions(list(row_seeds), list(col_seeds), style_list,
                                              explore_class(loaded.model, class_, loaded.path),
                                              trunc))
    save_image(grid.image(), Path(out))
    click.echo(f"wrote {out}: {len(row_seeds)} rows x {len(col_seeds)} columns, styles "
               f"{','.join(map(str, grid.styles))} from the rows (from {loaded.path})")


@cli.command("truncation")
@click.argument("arch", required=False)
@checkpoint_options
@click.option("--seeds", default="0-7", show_default=True, help="one row each")
@click.option("--psi", "psi_text", default="-1,-0.5,0,0.5,0.7,1", show_default=True,
              help="one column each")
@click.option("--class", "class_", metavar="K|NAME", help="class (conditional models)")
@click.option("--out", default="truncation.png", show_default=True)
@click.pass_context
def truncation_command(ctx, arch, ckpt_ref, runs, device, trust, seeds, psi_text, class_, out):
    """A truncation sweep: one row per seed, one column per psi."""
    from ganzoo.explore import TruncationOptions, truncation_sweep
    from ganzoo.explore.truncation import parse_psis
    seed_list, psis = parse_seeds(seeds), parse_psis(psi_text)
    if len(seed_list) * len(psis) > MAX_GRID_IMAGES:
        raise GanzooError(f"truncation: a grid holds at most {MAX_GRID_IMAGES} images")
    loaded = load_for(ctx, arch, ckpt_ref, runs, device, trust)
    sweep = truncation_sweep(loaded.model, TruncationOptions(
        list(seed_list), psis, explore_class(loaded.model, class_, loaded.path)))
    save_image(sweep.image(), Path(out))
    click.echo(f"wrote {out}: {len(seed_list)} seeds x psi {psi_text} (from {loaded.path})")


@cli.command("project")
@click.argument("arch", required=False)
@checkpoint_options
@click.option("--target", required=True, metavar="PHOTO", help="the image to match")
@click.option("--steps", type=int, default=1000, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--extractor", default="auto", show_default=True, metavar="auto|none|NAME",
              help="feature network in the distance: a registered extractor, or vgg16[:RES] "
              "(LPIPS-VGG16, from --feature-weights); auto: the domain extractor when the "
              "run's data has labels, else pixels only")
@click.option("--feature-weights", metavar="PATH", help="weights file for an extractor "
              "that takes one (vgg16: torchvision's VGG16 or an LPIPS VGG state dict you "
              "have)")
@click.option("--feature-lambda", type=float, default=1.0, show_default=True,
              help="weight of the feature distance against pixel MSE")
@click.option("--class", "class_", metavar="K|NAME", help="class (conditional models)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--save-video", is_flag=True, help="also write the optimisation as a video "
              "(proj.mp4; proj.gif without imageio-ffmpeg)")
@click.option("--out", default="projected", show_default=True, help="output directory")
@click.pass_context
def project_command(ctx, arch, ckpt_ref, runs, device, trust, target, steps, lr, extractor,
                    feature_weights, feature_lambda, class_, seed, save_video, out):
    """Find the latent (W for style-based G, z otherwise) whose image matches PHOTO."""
    from ganzoo.explore.project_files import ProjectRequest, run_projection
    request = ProjectRequest(Path(target), steps, lr, extractor, feature_weights,
                             feature_lambda, class_, seed, save_video, Path(out))
    loaded = load_for(ctx, arch, ckpt_ref, runs, device, trust)
    for line in run_projection(loaded, request, registry_from(ctx)):
        click.echo(line)
