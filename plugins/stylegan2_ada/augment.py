"""Moved to :mod:`ganzoo.augment.pipeline` (every architecture uses it now); this name stays
for code that imported it from the plugin."""
from ganzoo.augment.pipeline import *  # noqa: F401,F403
from ganzoo.augment.pipeline import AugmentDraw, AugmentPipe, AugmentStrengths  # noqa: F401
