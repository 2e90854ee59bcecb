"""``ganzoo project`` behind the CLI: choosing the distance, running the projection and
writing its files (the latent, the image, target | projection, the optimisation video)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ganzoo.errors import GanzooError
from ganzoo.explore.encode import write_video
from ganzoo.explore.perceptual import VGG16Perceptual, default_resolution, from_file
from ganzoo.explore.project import (Distance, Projection, ProjectOptions, check_options,
                                    load_target, project, save_latent)
from ganzoo.progress import ProgressBar
from ganzoo.viz import grid_image, save_image

VIDEO_FRAMES = 200       # the optimisation video keeps about this many steps


@dataclass(frozen=True)
class ProjectRequest:
    target: Path
    steps: int = 1000
    lr: float = 0.1
    extractor: str = "auto"          # auto | none | a registered feature extractor
    feature_weights: str | None = None
    feature_lambda: float = 1.0
    class_: str | None = None
    seed: int = 0
    save_video: bool = False
    out: Path = Path("projected")


def options_for(request: ProjectRequest, class_index: int | None = None) -> ProjectOptions:
    every = max(1, request.steps // VIDEO_FRAMES) if request.save_video else 0
    return ProjectOptions(steps=request.steps, lr=request.lr, class_index=class_index,
                          seed=request.seed, video_every=every)


def check_request(request: ProjectRequest) -> None:
    """The request's values, before the target is read or a feature network built."""
    check_options(options_for(request))
    if not (math.isfinite(request.feature_lambda) and request.feature_lambda >= 0):
        raise GanzooError(f"--feature-lambda must be a number >= 0, got "
                          f"{request.feature_lambda!r}")
    if request.feature_weights and request.extractor in ("auto", "none"):
        raise GanzooError("--feature-weights needs --extractor NAME (the network they are for)")


def run_data(loaded, registry):
    """The run's training data, when the checkpoint names it and it can be prepared here;
    None otherwise (an official pickle's data set is usually elsewhere)."""
    from ganzoo.expand import training_data
    train = loaded.data.get("train") or {}
    if not train.get("data"):
        return None
    try:
        return training_data(train, registry)
    except GanzooError:
        return None


def choose_distance(loaded, request: ProjectRequest, registry) -> Distance:
    """pixel + the named extractor; ``auto``: pixel + domain when the run's data is labelled
    (the offline default), else pixel only."""
    from ganzoo.metrics.extract import ExtractorContext, build_extractor, prepare_net
    name = request.extractor
    if name == "none":
        return Distance()
    base, _, argument = name.partition(":")
    table = registry.feature_extractors()
    if base == VGG16Perceptual.name and base not in table:
        # projection's own perceptual distance (LPIPS-VGG16), from a file the user has
        net = from_file(request.feature_weights, argument,
                        default_resolution(loaded.model.data.resolution))
        net = prepare_net(net, loaded.model.device)
        return Distance(net, f"{name} [{net.weights_id}]", request.feature_lambda)
    if base != "auto" and base not in table:
        known = ", ".join(sorted({*table, VGG16Perceptual.name}))
        raise GanzooError(f"unknown feature extractor '{base}' (known: {known})")
    data = run_data(loaded, registry)
    if name == "auto":
        labelled = data is not None and data.labels is not None and len(data.class_names) > 1
        if not labelled:
            return Distance()
        name = "domain"
    if data is None and (name == "domain"):
        raise GanzooError(f"--extractor domain: {loaded.path} names no training data here "
                          "to train it on; use --extractor domain:SPEC or none")
    from ganzoo.data.source import ImageSet
    res, ch = loaded.model.data.resolution, loaded.model.data.channels
    data = data or ImageSet("none", np.zeros((1, ch, res, res), np.uint8))
    context = ExtractorContext(registry, data, str(loaded.data.get("train", {}).get("data")),
                               weights=request.feature_weights, device=loaded.model.device)
    ext = build_extractor(name, context)
    return Distance(ext.net, ext.identity, request.feature_lambda)


def run_projection(loaded, request: ProjectRequest, registry) -> Iterator[str]:
    """Project, write the files, and yield the lines to print."""
    from ganzoo.cli import parse_class
    check_request(request)
    model = loaded.model
    k = None if request.class_ is None else parse_class(request.class_, model, str(loaded.path))
    target = load_target(request.target, model.data.resolution, model.data.channels)
    distance = choose_distance(loaded, request, registry)
    yield f"distance: {distance.describe()}"
    options = options_for(request, k)
    with ProgressBar("project", request.steps) as bar:
        result = project(model, target, options, distance, on_step=lambda _: bar.advance())
    yield from write_projection(result, model, target, request)


def write_projection(result: Projection, model, target: torch.Tensor,
                     request: ProjectRequest) -> Iterator[str]:
    out = request.out
    npz = out / f"projected_{result.space.space}.npz"
    save_latent(result, model, npz)
    save_image(grid_image(result.image, 1), out / "projected.png")
    save_image(grid_image(target, 1), out / "target.png")
    save_image(grid_image(torch.cat([target, result.image.cpu()]), 2),
               out / "target-projection.png")
    yield (f"projected into {result.space.space} in {request.steps} steps: pixel MSE "
           f"{result.pixel_mse:.5f} (images in [-1, 1]), final loss {result.history[-1]:.5f}")
    written = [npz, out / "projected.png", out / "target-projection.png"]
    if result.frames:
        video = out / "proj.mp4"
        try:
            write_video(result.frames, video, 30)
        except GanzooError:          # no imageio-ffmpeg: a GIF says the same
            video = out / "proj.gif"
            write_video(result.frames, video, 30)
        written.append(video)
    yield "wrote " + ", ".join(str(p) for p in written)
