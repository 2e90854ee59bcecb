"""How far a `shapes` run has learned: diversity and shape-classifier figures per checkpoint.

    python benchmarks/shapes_figures.py runs/00000-stylegan2-ada-shapes [--all] [--n 500]

For each checkpoint (the newest only, or every one kept with --all) it samples ``--n`` images
(seed 0, truncation 1, the generate() defaults: G_ema for stylegan2-ada) and prints:

- ``across`` / ``within``: pixel std across the samples vs within an image
  (tests/shape_classifier.py:pixel_spread; real shapes: 0.39 / 0.82; a collapsed generator
  that draws the same image for every z: ~0.13 / 0.7);
- ``confident`` / ``balance``: the share of samples the shape classifier labels with >= 90%
  confidence and how evenly those spread over the five classes (1 = evenly; 0 = one class);
- ``counts``: confident samples per class (circle, square, triangle, star, ring).

The classifier is the quality tests' one (tests/shape_classifier.py, ~30 s to train on 2
cores); ``--classifier PATH`` caches it between calls. Used to choose `--cfg shapes32`
(README, StyleGAN2-ADA) and to re-check it after training changes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import ganzoo  # noqa: E402
from ganzoo.checkpoint import checkpoints_of  # noqa: E402
from shape_classifier import (pixel_spread, recognisability,  # noqa: E402
                              train_shape_classifier)


def classifier(cache: Path | None) -> torch.nn.Module:
    if cache is not None and cache.exists():
        net = torch.load(cache, weights_only=False)
    else:
        net, accuracy = train_shape_classifier(resolution=32)
        print(f"shape classifier: held-out accuracy {accuracy:.3f}", file=sys.stderr)
        if cache is not None:
            torch.save(net, cache)
    return net.eval()


@torch.no_grad()
def figures(checkpoint: Path, net: torch.nn.Module, n: int = 500) -> dict:
    model = ganzoo.load_checkpoint(checkpoint).model
    images = model.generate(n, seed=0)
    across, within = pixel_spread(images)
    stats = recognisability(net, images)
    probs = torch.softmax(net(images), 1)
    confident = probs.max(1).values >= 0.9
    counts = torch.bincount(probs.argmax(1)[confident], minlength=probs.shape[1])
    return {"across": round(across, 3), "within": round(within, 3),
            "confident": round(stats["confident"], 3),
            "balance": round(max(stats["class_balance"], 0.0), 3), "counts": counts.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--all", action="store_true", help="every kept checkpoint")
    parser.add_argument("--n", type=int, default=500, help="samples per checkpoint")
    parser.add_argument("--classifier", type=Path, help="cache file for the classifier")
    args = parser.parse_args()
    net = classifier(args.classifier)
    for run in args.runs:
        found = checkpoints_of(run)
        for checkpoint in found if args.all else found[-1:]:
            print(run.name, checkpoint.name, json.dumps(figures(checkpoint, net, args.n)),
                  flush=True)


if __name__ == "__main__":
    main()
