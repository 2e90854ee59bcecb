"""Differentiable augmentation of what a discriminator sees, for every architecture.

* :mod:`~ganzoo.augment.pipeline`: ADA's transforms (Karras et al. 2020), ``AugmentPipe``;
* :mod:`~ganzoo.augment.ada`: ADA's controller of p;
* :mod:`~ganzoo.augment.diffaugment`: DiffAugment's color, translation, cutout (Zhao et al.
  2020);
* :mod:`~ganzoo.augment.registry`: the names ``--augment-policy`` takes;
  :func:`register_augmentation` adds one (from a plugin);
* :mod:`~ganzoo.augment.lecam`: LeCam regularisation (Tseng et al. 2021);
* :mod:`~ganzoo.augment.options`, :mod:`~ganzoo.augment.state`: the options of every
  GANArchitecture and the training state they make.
"""
from ganzoo.augment.ada import AdaController
from ganzoo.augment.options import AugmentOptions
from ganzoo.augment.pipeline import AugmentPipe
from ganzoo.augment.registry import (Augmentation, augmentation, augmentation_names,
                                     register_augmentation)

__all__ = ["AdaController", "AugmentOptions", "AugmentPipe", "Augmentation", "augmentation",
           "augmentation_names", "register_augmentation"]
