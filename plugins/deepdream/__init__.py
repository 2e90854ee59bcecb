"""DeepDream (Mordvintsev et al. 2015) as a ganzoo plugin: octave gradient ascent on a layer of
InceptionV1, or of any ganzoo checkpoint's network (../shared/seeds/003_*.txt, sections 5-7)."""
from ganzoo import hookimpl
from ganzoo_plugins.deepdream.inception_v1 import InceptionV1
from ganzoo_plugins.deepdream.model import DeepDream


@hookimpl
def ganzoo_architectures():
    return [DeepDream]


@hookimpl
def ganzoo_feature_extractors():
    return [InceptionV1]
