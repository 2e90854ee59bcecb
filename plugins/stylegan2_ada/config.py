"""StyleGAN2-ADA's options: the published configuration table (``--cfg``) and overrides.

Facts from Karras et al. 2020 ("Training Generative Adversarial Networks with Limited Data",
its configuration table). Every option that a configuration sets defaults to ``None``,
meaning "take it from --cfg"; :func:`resolve` fills them in, and the model stores the
resolved config, so config.json and every checkpoint hold the values actually trained with
(a resume never re-derives them).

Constants the paper uses in every configuration live here too (Adam betas and epsilon,
path-length decay and batch shrink); the R1 and path-length intervals (16 and 4) are options.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ganzoo import option
from ganzoo.errors import GanzooError
from ganzoo.augment.pipeline import PRESETS

ADAM_BETAS = (0.0, 0.99)
ADAM_EPS = 1e-8
PL_DECAY = 0.01          # path-length mean: exponential moving average with this weight
PL_BATCH_SHRINK = 2      # the path-length phase runs on batch // 2
CHANNEL_UNIT = 32768     # channel_base = fmaps * 32768 ("fmaps" of the table)
# The official train.py passes --cfg's mapping depth to G only; a conditional D's label mapping
# keeps the class default of 8 layers under every configuration. ganzoo builds the same, so
# official conditional networks import one-to-one (--d-map changes it).
D_MAPPING_LAYERS = 8


@dataclass(frozen=True)
class CfgRow:
    """One row of the configuration table; ``ema_rampup`` None = no ramp-up."""

    batch: int
    mbstd: int
    fmaps: float
    lr: float
    gamma: float
    ema_kimg: float
    ema_rampup: float | None
    mapping: int
    pl_weight: float = 2.0
    style_mixing: float = 0.9
    z_dim: int = 512
    w_dim: int = 512
    channel_max: int = 512
    num_fp16_res: int = 4
    conv_clamp: float = 256.0
    d_architecture: str = "resnet"

    @property
    def channel_base(self) -> int:
        return int(self.fmaps * CHANNEL_UNIT)


# The published rows. Their minibatch is the total over the paper's GPUs; ganzoo trains on
# one device, which then takes the whole minibatch.
CONFIGS: dict[str, CfgRow] = {
    "stylegan2": CfgRow(32, 4, 1, 0.002, 10, 10, None, 8),
    "paper256": CfgRow(64, 8, 0.5, 0.0025, 1, 20, None, 8),
    "paper512": CfgRow(64, 8, 1, 0.0025, 0.5, 20, None, 8),
    "paper1024": CfgRow(32, 4, 2, 0.002, 2, 10, None, 8),
    # CIFAR-10 also turns path-length regularisation and style mixing off, and uses the
    # original, non-residual D.
    "cifar": CfgRow(64, 32, 1, 0.0025, 0.01, 500, 0.05, 2, pl_weight=0.0, style_mixing=0.0,
                    d_architecture="orig"),
    # Not published: small enough that 32x32 trains a few kimg in a few CPU minutes
    # (channels 32 at 32x32, 64 below; z and w of 64). For tests and CPU demos.
    "tiny": CfgRow(16, 4, 1 / 32, 0.0025, 0.05, 5, 0.05, 2, z_dim=64, w_dim=64,
                   channel_max=64),
    # Not published: tiny's networks with batch 64 (twice tiny's kimg per second on CPU),
    # minibatch stddev over 32 samples, no path length, no style mixing (as cifar). Every
    # tiny variant collapsed to one shape within 2-12 kimg; this one breaks out of it between
    # 60 and 100 kimg and draws circles, squares, triangles and rough stars on `shapes` at
    # 32x32 by 200 kimg (16.5 minutes on 2 CPU threads; benchmarks/RESULTS.md).
    "cpu": CfgRow(64, 32, 1 / 32, 0.0025, 0.05, 5, 0.05, 2, pl_weight=0.0, style_mixing=0.0,
                  z_dim=64, w_dim=64, channel_max=64),
}
CFG_NAMES = ("auto", *CONFIGS)


def auto_row(resolution: int) -> CfgRow:
    """``--cfg auto`` on one GPU: the minibatch follows the resolution, and the R1 weight and
    EMA half-life follow the minibatch."""
    batch = max(min(4096 // resolution, 32), 1)
    return CfgRow(batch=batch, mbstd=min(batch, 4),
                  fmaps=1 if resolution >= 512 else 0.5,
                  lr=0.002 if resolution >= 1024 else 0.0025,
                  gamma=0.0002 * resolution ** 2 / batch,
                  ema_kimg=batch * 10 / 32, ema_rampup=0.05, mapping=2)


def cfg_row(name: str, resolution: int) -> CfgRow:
    if name == "auto":
        return auto_row(resolution)
    if name not in CONFIGS:
        raise GanzooError(f"--cfg {name}: unknown; choose one of {', '.join(CFG_NAMES)}")
    return CONFIGS[name]


@dataclass
class StyleGAN2ADAConfig:
    cfg: str = option("auto", "published hyperparameter set the options below default to "
                      "(tiny: for tests; cpu: learns `shapes` on a CPU)", choices=list(CFG_NAMES))
    cond: bool = option(False, "train a class-conditional model on the data's labels")
    gamma: float | None = option(None, "R1 regularisation weight [default: from --cfg]")
    map: int | None = option(None, "mapping network depth [default: from --cfg]")
    d_map: int | None = option(None, "label mapping depth of a conditional D [default: 8, "
                               "what the official train.py builds under every --cfg]")
    d_arch: str | None = option(None, "discriminator blocks: resnet (residual) or orig (plain, "
                                "as --cfg cifar) [default: from --cfg]",
                                choices=["resnet", "orig"])
    ema: float | None = option(None, "G weight average half-life in kimg [default: from --cfg]")
    ema_rampup: float | None = option(None, "EMA ramp-up: half-life at most this x images "
                                      "seen; 0 = none [default: from --cfg]")
    lr: float | None = option(None, "Adam learning rate of G and D [default: from --cfg]")
    cbase: int | None = option(None, "channel base: channels at resolution r are "
                               "min(cbase // r, cmax) [default: from --cfg]")
    cmax: int | None = option(None, "maximum channels per layer [default: from --cfg]")
    z_dim: int | None = option(None, "size of z [default: from --cfg]")
    w_dim: int | None = option(None, "size of w [default: from --cfg]")
    mbstd_group: int | None = option(None, "minibatch-stddev group size [default: from --cfg]")
    pl_weight: float | None = option(None, "path-length regularisation weight; 0 = off "
                                     "[default: from --cfg]")
    style_mixing: float | None = option(None, "style mixing probability [default: from --cfg]")
    fp16_res: int | None = option(None, "the top N resolutions run in fp16 on CUDA "
                                  "[default: from --cfg]")
    conv_clamp: float | None = option(None, "clamp of conv outputs; 0 = none "
                                      "[default: from --cfg]")
    r1_interval: int = option(16, "R1 every N minibatches (lazy regularisation)")
    pl_interval: int = option(4, "path-length regularisation every N minibatches")
    aug: str = option("ada", "discriminator augmentation: adaptive p, fixed --p, or none",
                      choices=["ada", "fixed", "none"])
    augpipe: str = option("bgc", "augmentation preset: blit (flips, quarter turns, integer "
                          "shifts), geom, color, or bgc (all three)", choices=list(PRESETS))
    target: float = option(0.6, "ADA target for r_t = E[sign(D(real))]")
    p: float | None = option(None, "augmentation probability: --aug fixed's p, --aug ada's "
                             "initial p [default: 0 for ada]")
    ada_kimg: float = option(500.0, "ADA speed: p can move from 0 to 1 in this many kimg")

    def __post_init__(self) -> None:
        checks = [
            (self.gamma is None or self.gamma >= 0, f"--gamma must be >= 0, got {self.gamma}"),
            (self.map is None or self.map >= 1, f"--map must be >= 1, got {self.map}"),
            (self.d_map is None or self.d_map >= 1, f"--d-map must be >= 1, got {self.d_map}"),
            (self.ema is None or self.ema >= 0, f"--ema must be >= 0, got {self.ema}"),
            (self.ema_rampup is None or self.ema_rampup >= 0,
             f"--ema-rampup must be >= 0, got {self.ema_rampup}"),
            (self.lr is None or self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (self.cbase is None or self.cbase > 0, f"--cbase must be > 0, got {self.cbase}"),
            (self.cmax is None or self.cmax > 0, f"--cmax must be > 0, got {self.cmax}"),
            (self.z_dim is None or self.z_dim > 0, f"--z-dim must be > 0, got {self.z_dim}"),
            (self.w_dim is None or self.w_dim > 0, f"--w-dim must be > 0, got {self.w_dim}"),
            (self.mbstd_group is None or self.mbstd_group >= 1,
             f"--mbstd-group must be >= 1, got {self.mbstd_group}"),
            (self.pl_weight is None or self.pl_weight >= 0,
             f"--pl-weight must be >= 0, got {self.pl_weight}"),
            (self.style_mixing is None or 0 <= self.style_mixing <= 1,
             f"--style-mixing must be in [0, 1], got {self.style_mixing}"),
            (self.fp16_res is None or self.fp16_res >= 0,
             f"--fp16-res must be >= 0, got {self.fp16_res}"),
            (self.conv_clamp is None or self.conv_clamp >= 0,
             f"--conv-clamp must be >= 0, got {self.conv_clamp}"),
            (self.r1_interval >= 1, f"--r1-interval must be >= 1, got {self.r1_interval}"),
            (self.pl_interval >= 1, f"--pl-interval must be >= 1, got {self.pl_interval}"),
            (0 < self.target < 1, f"--target must be in (0, 1), got {self.target}"),
            (self.p is None or 0 <= self.p <= 1, f"--p must be in [0, 1], got {self.p}"),
            (self.ada_kimg > 0, f"--ada-kimg must be > 0, got {self.ada_kimg}"),
            (not (self.aug == "fixed" and self.p is None), "--aug fixed needs --p"),
            (not (self.aug == "none" and self.p), "--p does not apply to --aug none"),
        ]
        for ok, message in checks:
            if not ok:
                raise GanzooError(message)
        if self.cfg not in CFG_NAMES:
            raise GanzooError(f"--cfg {self.cfg}: unknown; choose one of {', '.join(CFG_NAMES)}")

    @property
    def conv_clamp_value(self) -> float | None:
        """The clamp as the networks take it (None = off)."""
        return self.conv_clamp or None


def resolve(config: StyleGAN2ADAConfig, resolution: int) -> StyleGAN2ADAConfig:
    """``config`` with every "from --cfg" option filled in from its row at ``resolution``."""
    row = cfg_row(config.cfg, resolution)
    from_row = {"gamma": float(row.gamma), "map": row.mapping, "d_map": D_MAPPING_LAYERS,
                "d_arch": row.d_architecture,
                "ema": float(row.ema_kimg),
                "ema_rampup": float(row.ema_rampup or 0), "lr": float(row.lr),
                "cbase": row.channel_base, "cmax": row.channel_max, "z_dim": row.z_dim,
                "w_dim": row.w_dim, "mbstd_group": row.mbstd,
                "pl_weight": float(row.pl_weight), "style_mixing": float(row.style_mixing),
                "fp16_res": row.num_fp16_res, "conv_clamp": float(row.conv_clamp),
                "p": 0.0}      # --aug fixed requires --p; ada starts at 0 unless given
    filled = {k: v for k, v in from_row.items() if getattr(config, k) is None}
    return dataclasses.replace(config, **filled)


def cfg_batch(config: StyleGAN2ADAConfig, resolution: int) -> int:
    """The minibatch ``--cfg`` asks for at ``resolution`` (used when --batch is not given)."""
    return cfg_row(config.cfg, resolution).batch


def lazy_adam(lr: float, betas: tuple[float, float], interval: int
              ) -> tuple[float, tuple[float, float]]:
    """Adam settings of a network regularised every ``interval`` minibatches in a phase of
    its own: that network takes interval + 1 optimiser steps per interval instead of
    interval, so the learning rate and the betas' horizon shrink by interval / (interval + 1)
    to keep the optimiser's behaviour per minibatch the same (lazy regularisation)."""
    ratio = interval / (interval + 1)
    return lr * ratio, (betas[0] ** ratio, betas[1] ** ratio)
