"""WGAN-GP with the ResNet generator and critic of Gulrajani et al. 2017, as a ganzoo plugin."""
from ganzoo import hookimpl
from ganzoo_plugins.wgan_gp.model import WGANGP


@hookimpl
def ganzoo_architectures():
    return [WGANGP]
