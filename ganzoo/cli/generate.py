"""`ganzoo generate [ARCH]`: images from a trained model, one file per seed or a grid, a
latent `ganzoo project` saved, or an architecture's own generate options (deepdream)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import click
import torch

from ganzoo.architecture import Architecture, GenerateRequest, check_config
from ganzoo.checkpoint import load_model, resolve_checkpoint
from ganzoo.cli.arguments import (MAX_GRID_IMAGES, Seeds, parse_class, parse_seeds,
                                  require_conditional)
from ganzoo.cli.group import cli, registry_from
from ganzoo.cli.options import config_options
from ganzoo.errors import GanzooError
from ganzoo.trainer import pick_device
from ganzoo.viz import grid_image, save_image


class GenerateCommand(click.Command):
    """`ganzoo generate [ARCH]`: when ARCH declares a GenerateConfig, its fields join the
    options for this call (so `ganzoo generate deepdream --help` lists them too)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # The command object outlives a call (in-process runs, tests): drop the options an
        # earlier call's ARCH added before adding this one's.
        self.params = [p for p in self.params if not getattr(p, "from_architecture", False)]
        if args and not args[0].startswith("-"):
            cls = registry_from(ctx).architecture(args[0])   # unknown: error with suggestions
            extra = config_options(cls.GenerateConfig) if cls.GenerateConfig else []
            clash = {o.name for o in extra} & {p.name for p in self.params}
            if clash:
                raise GanzooError(f"architecture {cls.name}: GenerateConfig field(s) "
                                  f"{', '.join(sorted(clash))} collide with generate options")
            for option in extra:
                option.from_architecture = True
            self.params = self.params + extra
        return super().parse_args(ctx, args)


@cli.command("generate", cls=GenerateCommand)
@click.argument("arch", required=False)
@click.option("--checkpoint", "ckpt_ref", default=None, metavar="latest|RUN|CKPT",
              help="which run or checkpoint to sample  [default: latest]")
@click.option("--seeds", "--seed", default=None,
              help="e.g. 0-15,20  [default: 0-15; deepdream: 0]")
@click.option("--class", "class_", metavar="K|NAME|all", help="class index or name "
              "(conditional models); 'all' writes a grid with one class per column")
@click.option("--trunc", type=float, default=None, help="truncation psi (style-based models)")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default=None,
              help="per-pixel noise inputs (style-based models)  [default: the model's]")
@click.option("--grid", is_flag=True, help="write one grid instead of one file per seed")
@click.option("--projected", metavar="W.npz", default=None,
              help="render a latent `ganzoo project` wrote (instead of seeds)")
@click.option("--out", default="generated", show_default=True, help="output directory")
@click.option("--runs", default="runs", show_default=True, help="where runs live")
@click.option("--device", default="auto", show_default=True)
@click.option("--trust", is_flag=True, help="allow checkpoints that need pickle code execution")
@click.pass_context
def generate_command(ctx, arch, ckpt_ref, seeds, class_, trunc, noise_mode, grid, projected,
                     out, runs, device, trust, **arch_options):
    """Sample images from a trained model (default: the newest run under ./runs).

    `ganzoo generate ARCH --help` also lists ARCH's own options (deepdream: --input, --layer...).
    """
    reg = registry_from(ctx)
    cls = reg.architecture(arch) if arch else None   # unknown names: error with suggestions
    if cls is not None and cls.GenerateConfig is not None:
        request = GenerateRequest(ckpt_ref, Path(runs), None if seeds is None else
                                  parse_seeds(seeds), Path(out), pick_device(device), trust, reg)
        generate_with_options(cls, request, arch_options,
                              {"--class": class_, "--trunc": trunc, "--noise-mode": noise_mode,
                               "--grid": grid})
        return
    seed_list = parse_seeds(seeds or "0-15")
    path = resolve_checkpoint(ckpt_ref or "latest", Path(runs), arch=arch)
    loaded = load_model(path, trust=trust, device=pick_device(device), registry=reg,
                        expect_arch=arch)
    model = loaded.model
    if model.GenerateConfig is not None:
        raise GanzooError(f"{path} is a {model.name} checkpoint, which takes its own options: "
                          f"see `ganzoo generate {model.name} --help`")
    if projected is not None:
        write_projected(model, Path(projected), Path(out), path,
                        {"--seeds": seeds, "--class": class_, "--trunc": trunc,
                         "--noise-mode": noise_mode, "--grid": grid or None})
        return
    options = sampling_options(model, trunc, noise_mode)
    write_samples(model, seed_list, class_, grid, options, Path(out), path)


def generate_with_options(cls: type[Architecture], request: GenerateRequest, values: dict,
                          gan_options: dict) -> None:
    """Hand `ganzoo generate ARCH` to an architecture that declares a GenerateConfig."""
    for flag, value in gan_options.items():
        if value is not None and value is not False:
            raise GanzooError(f"{flag} does not apply to {cls.name} (see `ganzoo generate "
                              f"{cls.name} --help`)")
    names = [f.name for f in dataclasses.fields(cls.GenerateConfig)]
    config = cls.GenerateConfig(**{k: values[k] for k in names})
    check_config(config)
    paths = cls.generate_files(request, config)
    click.echo(f"wrote {', '.join(str(p) for p in paths)}")


def sampling_options(model: Architecture, trunc: float | None, noise_mode: str | None) -> dict:
    """What --trunc and --noise-mode ask of ``model.generate``; refused for a model that has
    no such thing rather than ignored."""
    options = {}
    if trunc is not None:
        if not model.supports_truncation:
            raise GanzooError(f"--trunc: {model.name} does not support truncation")
        options["truncation_psi"] = trunc
    if noise_mode is not None:
        if not model.supports_noise_mode:
            raise GanzooError(f"--noise-mode: {model.name} has no noise inputs")
        options["noise_mode"] = noise_mode
    return options


def write_samples(model: Architecture, seeds: Seeds, class_: str | None, grid: bool,
                  options: dict, out_dir: Path, path: Path) -> None:
    """--class all: a grid with one class per column, one seed per row; else one class (or
    the model's choice) as a grid or one file per seed."""
    if class_ == "all":
        require_conditional(model, str(path))
        write_grid(model, seeds, list(range(model.data.num_classes)), options, out_dir,
                   path, titles=model.data.class_names)
        return
    k = None if class_ is None else parse_class(class_, model, str(path))
    if grid:
        write_grid(model, seeds, [k], options, out_dir, path)
    else:
        write_files(model, seeds, k, options, out_dir, path)


def sample(model: Architecture, seed: int, k: int | None, options: dict) -> torch.Tensor:
    """One image: seed ``seed``, class ``k`` (None: the model's choice)."""
    labels = None if k is None else torch.tensor([k], device=model.device)
    return model.generate(1, seed=seed, **options, labels=labels)


def write_files(model: Architecture, seeds: Seeds, k: int | None, options: dict,
                out_dir: Path, path: Path) -> None:
    """One PNG per seed, each written as soon as it is made: a long call keeps no images in
    memory, and an interrupted one keeps what it wrote."""
    suffix = "" if k is None else f"-class{k}"
    for s in seeds:
        save_image(grid_image(sample(model, s, k, options), 1),
                   out_dir / f"seed{s:04d}{suffix}.png")
    click.echo(f"wrote {len(seeds)} images to {out_dir}/ (from {path})")


def write_grid(model: Architecture, seeds: Seeds, classes: list, options: dict, out_dir: Path,
               path: Path, titles: tuple[str, ...] = ()) -> None:
    """One grid: a column per class with ``titles``, else a square of seeds."""
    count = len(seeds) * len(classes)
    if count > MAX_GRID_IMAGES:
        raise GanzooError(f"--grid: {count} images; a grid holds at most {MAX_GRID_IMAGES} "
                          "(fewer --seeds, or leave out --grid for one file per seed)")
    images = torch.cat([sample(model, s, k, options) for s in seeds for k in classes])
    cols = len(classes) if titles else math.ceil(math.sqrt(len(seeds)))
    save_image(grid_image(images, cols, col_titles=titles), out_dir / "grid.png")
    click.echo(f"wrote {out_dir / 'grid.png'} ({len(images)} images from {path})")


def write_projected(model: Architecture, npz: Path, out_dir: Path, path: Path,
                    others: dict) -> None:
    """`generate --projected W.npz`: the projected latent (and its noise maps) rendered."""
    from ganzoo.explore import load_latent, render_saved
    given = [flag for flag, value in others.items() if value is not None]
    if given:
        raise GanzooError(f"--projected renders the saved latent; {', '.join(given)} "
                          "do(es) not apply")
    image = render_saved(model, load_latent(npz, model))
    target = out_dir / f"{npz.stem}.png"
    save_image(grid_image(image, 1), target)
    click.echo(f"wrote {target} (from {npz} and {path})")
