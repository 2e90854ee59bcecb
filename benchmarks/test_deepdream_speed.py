"""DeepDream speed on CPU at 1024x768 with random-weight InceptionV1 (the same network as with
ImageNet weights, so the same cost), tile 512, one round each (about a minute on 2 cores).

- Seconds per octave: the full-size octave (the costliest) with the default 10 steps, for a
  middle, the default and the deepest layer.
- A whole default dream (mixed4c, --octaves 4 --rescale 0.7): four smaller octaves add 0.9x
  the full size in pixels, so expect about 1.9x the full-size octave.

Results: benchmarks/RESULTS.md.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ganzoo_plugins.deepdream.dream import DreamParams, dream, layer_objective, tiled_gradient
from ganzoo_plugins.deepdream.inception_v1 import random_inception_v1
from ganzoo_plugins.deepdream.photo import make_photo
from bench_util import median_seconds, small

WIDTH, HEIGHT = small((1024, 768), (128, 96))      # smoke mode: a thumbnail


@pytest.fixture(scope="module")
def net():
    return random_inception_v1().requires_grad_(False)


@pytest.fixture(scope="module")
def photo():
    pixels = np.asarray(make_photo(WIDTH, HEIGHT)).copy()
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1


def run_dream(benchmark, net, photo, params: DreamParams) -> float:
    objective = layer_objective(net, params.layer)
    tiled_gradient(photo[..., :256, :256], objective, 512)        # warm-up
    return median_seconds(benchmark, dream, args=(photo, objective, params))[0]


@pytest.mark.parametrize("layer", ["mixed3b", "mixed4c", "mixed5b"])
def test_seconds_per_octave_1024x768(benchmark, net, photo, layer):
    params = DreamParams(layer=layer, octaves=0)
    seconds = run_dream(benchmark, net, photo, params)
    benchmark.extra_info.update({"sec_per_octave": round(seconds, 2), "layer": layer,
                                 "steps": params.iterations, "threads": torch.get_num_threads()})
    print(f"\n{layer} {WIDTH}x{HEIGHT}: {seconds:.1f} s per octave ({params.iterations} steps, "
          f"tile {params.tile_size})")


def test_default_dream_1024x768(benchmark, net, photo):
    params = DreamParams(layer="mixed4c")
    seconds = run_dream(benchmark, net, photo, params)
    benchmark.extra_info.update({"seconds": round(seconds, 2), "octaves": params.octaves + 1})
    print(f"\ndefault dream (mixed4c, {params.octaves + 1} octaves) {WIDTH}x{HEIGHT}: "
          f"{seconds:.1f} s")
