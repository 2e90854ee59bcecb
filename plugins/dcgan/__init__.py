"""DCGAN (Radford, Metz & Chintala 2016) as a ganzoo plugin."""
from ganzoo import hookimpl
from ganzoo_plugins.dcgan.model import DCGAN


@hookimpl
def ganzoo_architectures():
    return [DCGAN]
