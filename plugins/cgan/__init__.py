"""A conditional DCGAN with label embedding (../shared/seeds/004_*.txt), as a ganzoo plugin."""
from ganzoo import hookimpl
from ganzoo_plugins.cgan.model import CGAN


@hookimpl
def ganzoo_architectures():
    return [CGAN]
