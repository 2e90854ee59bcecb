"""Making a class or data source under test visible to ``ganzoo`` commands run in-process.

An installed plugin's classes are found through its entry point. One defined in a test module
is not installed, so it is registered through ``--plugin``: a throwaway module holding one
registering hook is put in ``sys.modules`` for the duration of a ``with`` block.
"""
from __future__ import annotations

import contextlib
import itertools
import sys
import types
from typing import Any, Iterator

import ganzoo
from ganzoo.registry import Registry, get_registry, reset_registry

_counter = itertools.count()
# Each registering hook, and the registry table it fills.
TABLES = {"ganzoo_architectures": Registry.architectures,
          "ganzoo_datasets": Registry.datasets,
          "ganzoo_feature_extractors": Registry.feature_extractors}


def _same(registered: Any, obj: Any) -> bool:
    """A class is the same class; a data source instance, one of the same class (the entry
    point builds its own instance)."""
    return registered is obj if isinstance(obj, type) else type(registered) is type(obj)


@contextlib.contextmanager
def plugin_args_for(obj: Any, hook: str = "ganzoo_architectures") -> Iterator[list[str]]:
    """The global options (``["--plugin", MODULE]``, or none when an installed plugin
    already provides it) under which ``ganzoo`` sees ``obj``."""
    reset_registry()
    known = TABLES[hook](get_registry()).get(obj.name)
    reset_registry()
    if known is not None:
        if not _same(known.obj, obj):
            raise AssertionError(
                f"the name '{obj.name}' is registered by plugin '{known.plugin.name}' "
                f"({known.plugin.module}) for something else: give yours a name of its own")
        yield []
        return
    module_name = f"_ganzoo_contract_plugin_{next(_counter)}"
    module = types.ModuleType(module_name)
    setattr(module, hook, ganzoo.hookimpl(specname=hook)(lambda: [obj]))
    sys.modules[module_name] = module
    try:
        yield ["--plugin", module_name]
    finally:
        del sys.modules[module_name]
        reset_registry()
