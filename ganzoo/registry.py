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
from ganzoo.architecture import Architecture
from ganzoo.data.source import DatasetSource
from ganzoo.features import FeatureExtractor
from ganzoo.importers import CheckpointImporter
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
        self._loaded: dict[str, PluginInfo] = {}     # registered with pluggy, by name
        self._cache: dict[str, dict[str, Registered]] = {}
        self._conflicts: dict[str, str] = {}         # names two plugins registered: why
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

    def _register(self, name: str, module: str, load, dist: str, version: str) -> None:
        info = PluginInfo(name, module, dist, version)
        taken = self._loaded.get(name)
        self.plugins.append(info)
        if taken is not None:       # pluggy would refuse it; say which plugin has the name
            info.error = (f"plugin name '{name}' is already taken by {taken.module} "
                          f"({taken.distribution}); not loaded")
            return
        try:
            obj = load()
            other = self.pm.get_name(obj) if self.pm.is_registered(obj) else None
            if other is not None:
                info.error = f"{module} is already loaded as plugin '{other}'; not loaded again"
                return
            self.pm.register(obj, name=name)
            self._loaded[name] = info
        except PLUGIN_FAILURES as e:  # any failure of a plugin is isolated, sys.exit too
            info.error = _one_line(e)
            info.traceback = traceback.format_exc()

    def _call(self, impl, hook: str, info: PluginInfo, **kwargs) -> Any:
        """One plugin's hook; a failure is recorded against the plugin (None comes back)."""
        try:
            return impl.function(**kwargs)
        except PLUGIN_FAILURES as e:
            info.error = f"{hook}() failed: {_one_line(e)}"
            info.traceback = traceback.format_exc()
            return None

    def _collect(self, hook: str) -> dict[str, Registered]:
        """Call ``hook`` on each plugin separately, so a failure names its plugin. What a
        plugin returns is checked before anything uses it: a wrong type or a name another
        plugin registered marks that plugin as failed, and the others keep working."""
        if hook in self._cache:
            return self._cache[hook]
        found: dict[str, Registered] = {}
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            info = self._loaded[impl.plugin_name]
            items = self._call(impl, hook, info)
            problem = _check_items(hook, items) if items is not None else None
            if problem:
                info.error = f"{hook}() {problem}"
                continue
            for obj in items or []:
                if obj.name in found:
                    info.error = self._conflict(hook, found[obj.name], info, obj.name)
                    continue
                found[obj.name] = Registered(obj.name, obj, info)
                info.provides.append(obj.name)
        self._cache[hook] = found
        return found

    def _conflict(self, hook: str, first: Registered, info: PluginInfo, name: str) -> str:
        """A name two plugins register: kept from neither when looked up (which one the user
        meant is unknown), recorded against the later plugin."""
        message = (f"{hook.removeprefix('ganzoo_')[:-1]} name '{name}' is registered twice:"
                   f" by plugin '{first.plugin.name}' ({first.plugin.module}) and by plugin "
                   f"'{info.name}' ({info.module})")
        self._conflicts[name] = message
        return message

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
        if name in self._conflicts:
            raise GanzooError(self._conflicts[name])
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
            self._call(impl, "ganzoo_commands", self._loaded[impl.plugin_name], cli=cli)


# What a plugin may do wrong without taking the CLI down: raise anything, or call sys.exit
# (SystemExit), at import or in a hook. Ctrl-C (KeyboardInterrupt) still stops the command.
PLUGIN_FAILURES = (Exception, SystemExit)


# What each registering hook returns a list of: (base, classes or instances, its name).
EXPECTED = {"ganzoo_architectures": (Architecture, True, "an Architecture subclass"),
            "ganzoo_datasets": (DatasetSource, False, "a DatasetSource instance"),
            "ganzoo_feature_extractors": (FeatureExtractor, True, "a FeatureExtractor subclass"),
            "ganzoo_checkpoint_importers": (CheckpointImporter, False,
                                            "a CheckpointImporter instance")}


def _check_items(hook: str, items: Any) -> str | None:
    """Why a registering hook's result is unusable, or None when it is fine."""
    if not isinstance(items, (list, tuple)):
        return f"must return a list, returned {type(items).__name__} {_short(items)}"
    base, classes, what = EXPECTED[hook]
    for obj in items:
        fits = issubclass(obj, base) if isinstance(obj, type) else isinstance(obj, base)
        if not fits or classes != isinstance(obj, type):
            return f"returned {_short(obj)}, not {what}"
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            return f"returned {_short(obj)} without a name (a non-empty string)"
    return None


def _short(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 60 else text[:57] + "..."


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
