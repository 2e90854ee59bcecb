"""A conformance kit for ganzoo plugins, installed with ganzoo and loaded by pytest.

A plugin's test file subclasses a contract and names what it tests::

    from ganzoo.testing import ArchitectureContract

    class TestMyGAN(ArchitectureContract):
        architecture = MyGAN
        small = dict(width=8)          # a config that trains in milliseconds

and pytest runs the named contract tests on it (see :class:`ArchitectureContract`). The
``ganzoo_cli`` fixture (registered through the ``pytest11`` entry point, module
:mod:`ganzoo.testing.plugin`) runs ``ganzoo ARGS`` in-process and returns its exit code and
output. The contracts are named without the ``Test`` prefix so pytest collects only the
subclasses, never the bases.
"""
from __future__ import annotations

from ganzoo.testing.architecture import ArchitectureContract, reserved_option_names
from ganzoo.testing.cli import CliResult, CliRunner
from ganzoo.testing.datasets import DatasetSourceContract
from ganzoo.testing.features import FeatureExtractorContract
from ganzoo.testing.marks import contract_test

__all__ = ["ArchitectureContract", "CliResult", "CliRunner", "DatasetSourceContract",
           "FeatureExtractorContract", "contract_test", "reserved_option_names"]
