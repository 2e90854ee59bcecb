"""Moved to :mod:`ganzoo.augment.ada` (every architecture uses it now); this name stays for
code that imported it from the plugin."""
from ganzoo.augment.ada import AdaController  # noqa: F401
