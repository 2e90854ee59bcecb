"""The augmentation options of every architecture built on ``GANArchitecture``.

Declared once, here, as a dataclass that ``ganzoo.adversarial.EMAOptions`` inherits, so
dcgan, cgan and wgan-gp (and a plugin's GANArchitecture whose Config builds on EMAOptions or
LossOptions) all get ``--augment``, ``--augment-p``, ``--augment-policy``, ``--ada-target``,
``--ada-kimg`` and ``--lecam``. Being architecture options, they are in config.json and every
checkpoint, a resume takes them from there, and ``--init`` keeps the source's unless given.
"""
from __future__ import annotations

from dataclasses import dataclass

from ganzoo.architecture import option
from ganzoo.augment.registry import parse_policy
from ganzoo.errors import GanzooError

MODES = ("none", "diffaug", "ada", "fixed")
# What each mode augments with when --augment-policy is not given: DiffAugment's full policy
# (the paper's choice at 10-20% data), ADA's bgc.
DEFAULT_POLICY = {"diffaug": "color,translation,cutout", "ada": "bgc", "fixed": "bgc"}
DEFAULT_P = {"diffaug": 1.0, "ada": 0.0}


@dataclass
class AugmentOptions:
    augment: str = option("none", "augment every image D sees, reals and fakes, in D's and "
                          "G's losses and the gradient penalty: diffaug (DiffAugment, p 1), "
                          "ada (p adapts to D's overfitting), fixed (p = --augment-p)",
                          choices=list(MODES))
    augment_p: float | None = option(None, "probability of each augmentation per image: "
                                     "fixed's p, ada's starting p [default: diffaug 1, "
                                     "ada 0]", at_least=0, at_most=1)
    augment_policy: str = option("", "augmentations, comma-separated: color, translation, "
                                 "cutout (DiffAugment), bgc, blit, geom (ADA), or a plugin's "
                                 "[default: diffaug color,translation,cutout; ada, fixed: "
                                 "bgc]", metavar="LIST")
    ada_target: float = option(0.6, "ADA target of r_t = E[sign(D(real) - boundary)] "
                               "(boundary: 0; LSGAN 0.5; WGAN the mean fake output)",
                               above=0, below=1)
    ada_kimg: float = option(500.0, "ADA speed: p can move from 0 to 1 in this many kimg "
                             "(the paper's 500 suits long runs; a short run needs less)",
                             above=0)
    lecam: float = option(0.0, "LeCam regularisation weight (Tseng et al. 2021); 0 = off",
                          at_least=0)

    def __post_init__(self) -> None:
        if self.augment_p is not None and not 0 <= self.augment_p <= 1:
            raise GanzooError(f"--augment-p must be in [0, 1], got {self.augment_p:g}")
        if self.augment not in MODES:
            raise GanzooError(f"--augment {self.augment}: choose one of {', '.join(MODES)}")
        if self.augment == "fixed" and self.augment_p is None:
            raise GanzooError("--augment fixed needs --augment-p")
        if self.augment == "none" and (self.augment_p or self.augment_policy):
            raise GanzooError("--augment-p and --augment-policy need --augment "
                              "diffaug|ada|fixed")
        if self.augment != "none":
            parse_policy(self.policy)

    @property
    def policy(self) -> str:
        return self.augment_policy or DEFAULT_POLICY.get(self.augment, "")

    @property
    def start_p(self) -> float:
        return self.augment_p if self.augment_p is not None else DEFAULT_P.get(self.augment, 0)
