"""Exploring a trained generator: interpolation videos, style mixing, truncation sweeps and
projection of real images. The ``ganzoo video|mix|truncation|project`` commands are thin
layers over these functions.

Each tool asks the architecture for its :class:`~ganzoo.architecture.LatentSpace` and refuses
in one line what it lacks (DeepDream has no latent space; dcgan, wgan-gp and cgan have z but
no styles to mix and no truncation)::

    from ganzoo import explore, load_checkpoint
    model = load_checkpoint("runs/00000-stylegan2-ada-shapes/checkpoints/...pt").model
    explore.make_video(model, explore.VideoOptions(seeds=range(8)), Path("walk.mp4"))
    explore.style_mix(model, explore.MixOptions(rows=[0, 1], cols=[10, 11])).image()
    explore.truncation_sweep(model, explore.TruncationOptions(seeds=[0, 1])).image()
    result = explore.project(model, explore.load_target(Path("photo.png"), 32, 3))
"""
from ganzoo.explore.latents import interpolate, render, seed_latents, slerp
from ganzoo.explore.mix import MixGrid, MixOptions, style_mix
from ganzoo.explore.project import (Distance, Projection, ProjectOptions, load_latent,
                                    load_target, project, render_saved, save_latent)
from ganzoo.explore.truncation import TruncationOptions, TruncationSweep, truncation_sweep
from ganzoo.explore.video import VideoOptions, VideoResult, make_video, video_frames

__all__ = ["Distance", "MixGrid", "MixOptions", "ProjectOptions", "Projection",
           "TruncationOptions", "TruncationSweep", "VideoOptions", "VideoResult",
           "interpolate", "load_latent", "load_target", "make_video", "project",
           "render", "render_saved", "save_latent", "seed_latents", "slerp", "style_mix",
           "truncation_sweep", "video_frames"]
