"""DeepDream behind the Architecture interface.

"Training" fits a small classifier (:class:`SmallClassifier`) on ``--data``: it becomes an
offline backbone whose layers have seen the data. ``ganzoo generate deepdream`` dreams on a
photo with one backbone: InceptionV1 with ImageNet weights (the default), a random-weight
InceptionV1 (``--weights random``: tests, timing), or any ganzoo checkpoint (``--checkpoint``:
the classifier of a deepdream run, or the discriminator of a GAN run).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

from ganzoo import Architecture, DataSpec, option
from ganzoo.architecture import GenerateRequest
from ganzoo.checkpoint import load_model, resolve_checkpoint
from ganzoo.errors import GanzooError
from ganzoo.features import FeatureExtractor
from ganzoo.viz import ProgressGif, grid_image, save_image
from ganzoo_plugins.deepdream.backbones import DiscriminatorLayers, SmallClassifier
from ganzoo_plugins.deepdream.dream import DreamParams, dream, keep_colours, layer_objective
from ganzoo_plugins.deepdream.inception_v1 import (fetch_imagenet_weights,
                                                   inception_from_state_dict,
                                                   random_inception_v1, read_state_dict)

#: What the trainer's sample grids dream: seeded noise, with a short schedule (a grid of 100
#: full dreams would take longer than the training between two snapshots).
PREVIEW = dict(iterations=4, octaves=0, step_size=8.0)
GIF_MAX_SIDE = 512


@dataclass
class ClassifierConfig:
    width: int = option(16, "channels of conv1 (doubling per block)", at_least=1)
    blocks: int = option(5, "conv blocks (each after the first halves the resolution)",
                         at_least=1)
    lr: float = option(2e-3, "Adam learning rate", above=0)


@dataclass
class DreamOptions:
    """Options of `ganzoo generate deepdream` (the seed's parameters, section 6.2.4)."""

    input: str = option(None, "the photo to dream on (any size; required)")
    layer: str = option(None, "layer to amplify [default: the backbone's: mixed4c for "
                        "InceptionV1]; a wrong name lists the backbone's layers")
    channels: str = option(None, "only these channels of the layer, e.g. 0-5,9 [default: all]")
    iterations: int = option(10, "gradient steps per octave (num_iterations)")
    step_size: float = option(3.0, "pixel change per step, in 0-255 units")
    octaves: int = option(4, "times the photo is downscaled (num_repeats); dreams run at "
                          "octaves + 1 sizes")
    rescale: float = option(0.7, "size ratio between octaves (rescale_factor)")
    blend: float = option(0.2, "share of the photo when a dream moves up an octave")
    tile_size: int = option(512, "tile side in pixels: bounds memory, whatever the photo size")
    color: bool = option(True, "let the dream change the photo's colours (--no-color keeps "
                         "them: the dream's luminance on the photo's chroma)")
    gif: bool = option(False, "also write the progression over octaves and steps as a GIF")
    weights: str = option(None, "InceptionV1 weights when no --checkpoint is given: a "
                          "torchvision GoogLeNet state dict, or 'random' [default: ImageNet "
                          "weights, downloaded once and sha256-checked]")

    def dream_params(self, backbone: FeatureExtractor) -> DreamParams:
        return DreamParams(layer=self.layer or backbone.default_layer,
                           channels=parse_channels(self.channels or ""), iterations=self.iterations,
                           step_size=self.step_size, octaves=self.octaves,
                           rescale=self.rescale, blend=self.blend, tile_size=self.tile_size,
                           color=self.color)


def parse_channels(text: str) -> tuple[int, ...]:
    """'0-5,9' -> (0, 1, 2, 3, 4, 5, 9); '' -> () (every channel)."""
    channels: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, _, hi = part.partition("-")
            channels += range(int(lo), int(hi or lo) + 1)
    except ValueError:
        raise GanzooError(f"--channels {text!r}: expected numbers and ranges like 0-5,9")
    return tuple(channels)


class DeepDream(Architecture):
    """DeepDream: octave gradient ascent on a layer (training fits a small classifier)."""

    name = "deepdream"
    Config = ClassifierConfig
    GenerateConfig = DreamOptions
    trains_on_labels = True
    default_batch = 64
    default_kimg = 10.0

    def __init__(self, config: ClassifierConfig, data: DataSpec, device: torch.device):
        super().__init__(config, data, device)
        if config.blocks < 1 or config.width < 1:
            raise GanzooError("--blocks and --width must be >= 1")
        self.classifier = SmallClassifier(data.channels, data.num_classes, config.width,
                                          config.blocks).to(self.device)
        self.opt = torch.optim.Adam(self.classifier.parameters(), lr=config.lr)

    def train_step(self, reals: Tensor, labels: Tensor | None) -> dict[str, float]:
        if labels is None:
            raise GanzooError("deepdream trains a classifier and needs labelled data")
        logits = self.classifier.logits(reals)
        loss = F.cross_entropy(logits, labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item(),
                "acc": (logits.argmax(1) == labels).float().mean().item()}

    def generate(self, n: int, *, seed: int | None = None, labels: Tensor | None = None,
                 inputs: Tensor | None = None, **options: Any) -> Tensor:
        """Dreams of ``inputs`` (NCHW in [-1, 1]) with this run's classifier; without inputs,
        of ``n`` seeded noise pictures with a short schedule (the trainer's sample grids).
        ``options`` are DreamParams fields (layer, channels, iterations, ...)."""
        if inputs is None:
            gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
            res = max(self.data.resolution, 32)
            inputs = torch.rand(n, 3, res, res, generator=gen) * 0.4 - 0.2
            options = {**PREVIEW, **options}
        was_training = self.classifier.training
        self.classifier.eval().requires_grad_(False)
        try:
            params = DreamParams(**{"layer": self.classifier.default_layer, **options})
            objective = layer_objective(self.classifier, params.layer, params.channels)
            return dream(inputs.to(self.device), objective, params, seed or 0)
        finally:
            self.classifier.train(was_training).requires_grad_(True)

    def state_dict(self) -> dict:
        return {"classifier": self.classifier.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.classifier.load_state_dict(state["classifier"])
        self.opt.load_state_dict(state["opt"])

    @classmethod
    def generate_files(cls, request: GenerateRequest, options: DreamOptions) -> list[Path]:
        if not options.input:
            raise GanzooError("ganzoo generate deepdream needs --input PHOTO")
        photo = read_photo(Path(options.input)).to(request.device)
        backbone = pick_backbone(request, options)
        params = options.dream_params(backbone)
        objective = layer_objective(backbone, params.layer, params.channels)  # checks them
        click.echo(f"dreaming on {options.input} ({photo.shape[-1]}x{photo.shape[-2]}) with "
                   f"{backbone.name}, layer {params.layer}", err=True)
        stem = f"{Path(options.input).stem}-{params.layer}"
        written = []
        for seed in request.seeds or [0]:
            gif = DreamGif(photo, params) if options.gif else None
            result = dream(photo, objective, params, seed, gif.add if gif else None)
            path = request.out / f"{stem}-seed{seed:04d}.png"
            save_image(grid_image(result, 1), path)
            written.append(path)
            if gif:
                written.append(gif.write(path.with_suffix(".gif")))
        return written


# -- backbones ----------------------------------------------------------------------------------

def pick_backbone(request: GenerateRequest, options: DreamOptions) -> FeatureExtractor:
    """--checkpoint: that run's network; else InceptionV1 with --weights or ImageNet weights."""
    if request.checkpoint is not None:
        if options.weights:
            raise GanzooError("--weights is for InceptionV1; with --checkpoint the run's own "
                              "network is the backbone")
        backbone = checkpoint_backbone(request)
    elif options.weights == "random":
        backbone = random_inception_v1()
    else:
        path = Path(options.weights) if options.weights else fetch_imagenet_weights()
        backbone = inception_from_state_dict(read_state_dict(path), str(path))
    return backbone.to(request.device).eval().requires_grad_(False)


def checkpoint_backbone(request: GenerateRequest) -> FeatureExtractor:
    """The classifier of a deepdream run, or the discriminator of a GAN run. ``latest`` means
    the newest deepdream run; other runs are named explicitly."""
    ref = request.checkpoint
    path = resolve_checkpoint(ref, request.runs, arch="deepdream" if ref == "latest" else None)
    model = load_model(path, trust=request.trust, device=request.device,
                       registry=request.registry).model
    if isinstance(model, DeepDream):
        return model.classifier
    D = getattr(model, "D", None)
    if isinstance(D, torch.nn.Module) and not model.conditional:
        return DiscriminatorLayers(D, model.name, model.data.resolution, model.data.channels)
    why = "conditional discriminators need labels" if model.conditional else \
        "it has no discriminator (D) or classifier"
    raise GanzooError(f"checkpoint {path} ({model.name}) cannot serve as a DeepDream "
                      f"backbone: {why}")


# -- files --------------------------------------------------------------------------------------

def read_photo(path: Path) -> Tensor:
    """A photo as [1, 3, H, W] in [-1, 1], upright (EXIF orientation applied)."""
    try:
        with Image.open(path) as img:
            rgb = ImageOps.exif_transpose(img).convert("RGB")
    except FileNotFoundError:
        raise GanzooError(f"--input {path}: no such file")
    except Exception as e:  # noqa: BLE001 - PIL raises many kinds for unreadable files
        raise GanzooError(f"--input {path}: cannot read it as an image ({type(e).__name__})")
    pixels = torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)[None]
    return pixels.float() / 127.5 - 1


class DreamGif:
    """The dream after every step of every octave, each frame at one size (at most
    GIF_MAX_SIDE), starting from the photo."""

    def __init__(self, photo: Tensor, params: DreamParams):
        h, w = photo.shape[-2:]
        scale = min(1.0, GIF_MAX_SIDE / max(h, w))
        self.size = (max(1, round(h * scale)), max(1, round(w * scale)))
        self.photo = self._fit(photo)
        self.color = params.color
        self.frames = ProgressGif(max_frames=200, ms_per_frame=80)
        self.frames.add(grid_image(self.photo, 1))

    def _fit(self, images: Tensor) -> Tensor:
        return F.interpolate(images.detach().cpu(), size=self.size, mode="bilinear",
                             align_corners=False, antialias=True)

    def add(self, octave: int, iteration: int, images: Tensor) -> None:
        frame = self._fit(images)
        if not self.color:
            frame = keep_colours(frame, self.photo)
        self.frames.add(grid_image(frame, 1))

    def write(self, path: Path) -> Path:
        self.frames.write(path)
        return path

