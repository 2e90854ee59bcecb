"""The plugin manager: loads entry points, isolates broken plugins, looks names up.

Every plugin, built-in or third-party, is a module registered under the entry-point group
"ganzoo". A plugin that raises on import is recorded with its error instead of taking the CLI
down; only commands that need it fail, saying why.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata as metadata
import os
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable

import pluggy

from ganzoo import hookspecs
from ganzoo.errors import GanzooError

PROJECT = "ganzoo"
ENTRY_POINT_GROUP = "ganzoo"
DISABLE_AUTOLOAD_ENV = "GANZOO_DISABLE_PLUGIN_AUTOLOAD"


@dataclass
class PluginInfo:
    """One plugin as `ganzoo plugins` shows it."""

    name: str                      # entry-point name, or the module name for --plugin
    module: str
    distribution: str              # the pip package that provides it
    version: str
    error: str | None = None       # one line: why it failed to load
    traceback: str | None = None   # the full story, shown by `ganzoo --debug plugins`
    provides: list[str] = field(default_factory=list)


@dataclass
class Registered:
    """A class or object a plugin registered under a name."""

    name: str
    obj: Any
    plugin: PluginInfo


class Registry:
    """Loads plugins once and answers name lookups for architectures, data sets, extractors."""

    def __init__(self, extra_modules: Iterable[str] = (), autoload: bool | None = None):
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        if autoload is None:
            autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "") in ("", "0")
        if autoload:
            for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP),
                             key=lambda e: e.name):
                dist = ep.dist
                self._register(ep.name, ep.value, ep.load,
                               dist.name if dist else "?", dist.version if dist else "?")
        for module in extra_modules:
            self._register(module, module, lambda m=module: importlib.import_module(m),
                           "--plugin", "")
        self._cache: dict[str, dict[str, Registered]] = {}

    def _register(self, name: str, module: str, load, dist: str, version: str) -> None:
        info = PluginInfo(name, module, dist, version)
        self.plugins.append(info)
        try:
            obj = load()
            self.pm.register(obj, name=name)
        except Exception as e:  # noqa: BLE001 - any failure of a plugin is isolated
            info.error = _one_line(e)
            info.traceback = traceback.format_exc()


    def _collect(self, hook: str) -> dict[str, Registered]:
        """Call ``hook`` on each plugin separately, so a failure names its plugin."""
        if hook in self._cache:
            return self._cache[hook]
        found: dict[str, Registered] = {}
        by_name = {p.name: p for p in self.plugins}
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            info = by_name[impl.plugin_name]
            try:
                items = impl.function() or []
            except Exception as e:  # noqa: BLE001
                info.error = f"{hook}() failed: {_one_line(e)}"
                continue
            for obj in items:
                name = obj.name
                if name in found:
                    raise GanzooError(
                        f"{hook.removeprefix('ganzoo_')[:-1]} name '{name}' is registered twice:"
                        f" by plugin '{found[name].plugin.name}' ({found[name].plugin.module})"
                        f" and by plugin '{info.name}' ({info.module})")
                found[name] = Registered(name, obj, info)
                info.provides.append(name)
        self._cache[hook] = found
        return found

    # -- lookups ---------------------------------------------------------------------------

    def architectures(self) -> dict[str, Registered]:
        return self._collect("ganzoo_architectures")

    def datasets(self) -> dict[str, Registered]:
        return self._collect("ganzoo_datasets")

    def feature_extractors(self) -> dict[str, Registered]:
        return self._collect("ganzoo_feature_extractors")

    def checkpoint_importers(self) -> dict[str, Registered]:
        return self._collect("ganzoo_checkpoint_importers")

    def load_all(self) -> None:
        """Run every registering hook, so `plugins` can show what each plugin provides."""
        for getter in (self.architectures, self.datasets, self.feature_extractors,
                       self.checkpoint_importers):
            getter()

    def architecture(self, name: str) -> type:
        return self._lookup("architecture", name, self.architectures()).obj

    def _lookup(self, kind: str, name: str, table: dict[str, Registered]) -> Registered:
        if name in table:
            return table[name]
        broken = [p for p in self.plugins if p.error and p.name == name]
        if broken:
            raise GanzooError(f"{kind} '{name}' is unavailable: plugin '{name}' failed to "
                              f"load: {broken[0].error}")
        hint = difflib.get_close_matches(name, table, n=3, cutoff=0.5)
        known = ", ".join(sorted(table)) or "none"
        suggestion = f"; did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
        raise GanzooError(f"unknown {kind} '{name}'{suggestion} (known: {known})")

    def add_commands(self, cli) -> None:
        for impl in self.pm.hook.ganzoo_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as e:  # noqa: BLE001
                info = next(p for p in self.plugins if p.name == impl.plugin_name)
                info.error = f"ganzoo_commands() failed: {_one_line(e)}"


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0]}" if msg else type(e).__name__


_default: Registry | None = None
_default_modules: tuple[str, ...] = ()


def get_registry(extra_modules: Iterable[str] = ()) -> Registry:
    """The process-wide registry (rebuilt when the set of --plugin modules changes)."""
    global _default, _default_modules
    extra = tuple(extra_modules)
    if _default is None or extra != _default_modules:
        _default, _default_modules = Registry(extra), extra
    return _default


def reset_registry() -> None:
    """Forget the loaded plugins (tests that install or add plugins call this)."""
    global _default
    _default = None
