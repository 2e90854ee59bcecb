"""StyleGAN2-ADA (Karras et al. 2020) as a ganzoo plugin, written from the papers."""
from ganzoo import hookimpl


@hookimpl
def ganzoo_architectures():
    from ganzoo_plugins.stylegan2_ada.model import StyleGAN2ADA
    return [StyleGAN2ADA]


@hookimpl
def ganzoo_checkpoint_importers():
    from ganzoo_plugins.stylegan2_ada.official import OfficialImporter
    return [OfficialImporter()]
