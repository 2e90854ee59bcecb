"""The plugin manager: loads entry points, isolates broken plugins, looks names up.

Every plugin, built-in or third-party, is a module registered under the entry-point group
"ganzoo". A plugin that raises on import is recorded with its error instead of taking the CLI
down; only commands that need it fail, saying why.

The contract is strict: pluggy validates every hookimpl (a wrong argument name is its
PluginValidationError) and hooks are called through pluggy, one plugin at a time, so a failure
names its plugin; a hook that no hookspec declares (a misspelt ``ganzoo_architecture``), or a
command name that is already taken, is an error recorded against that plugin too.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata as metadata
import inspect
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
        self._unavailable: dict[tuple[str, str], str] = {}   # (kind, name) a broken plugin meant
        self._commands: dict[str, Any] | None = None  # what plugins add to the CLI, by name
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
        self.pm.check_pending()   # holds: a plugin with an unknown hook was not kept

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
            unmarked = self._unmarked_hooks(obj)
            self.pm.register(obj, name=name)           # pluggy validates each hookimpl here
        except pluggy.PluginValidationError as e:
            info.error = self._invalid_hookimpl(obj, e)
            if self.pm.get_plugin(name) is obj:     # an older pluggy registered it halfway
                self.pm.unregister(obj, name=name)
            info.traceback = traceback.format_exc()
            return
        except PLUGIN_FAILURES as e:  # any failure of a plugin is isolated, sys.exit too
            info.error = _one_line(e)
            info.traceback = traceback.format_exc()
            return
        problem = self._unknown_hooks(obj) or unmarked
        if problem:                 # the plugin is not kept: half a plugin hides the mistake
            self.pm.unregister(obj, name=name)
            info.error = f"{problem}; not loaded"
            return
        self._loaded[name] = info

    def _unknown_hooks(self, plugin) -> str | None:
        """pluggy's check_pending() for one plugin: a hookimpl no hookspec declares (unless
        marked ``optionalhook=True``, for a hook of a newer ganzoo)."""
        for caller in self.pm.get_hookcallers(plugin) or []:
            if caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not impl.optionalhook:
                    return f"unknown hook '{caller.name}'{_did_you_mean(caller.name)}"
        return None

    def _unmarked_hooks(self, plugin) -> str | None:
        """A module function named like a hook but without @ganzoo.hookimpl, which pluggy
        would silently skip."""
        for attr, value in sorted(vars(plugin).items()) if hasattr(plugin, "__dict__") else ():
            if (attr.startswith(PROJECT + "_") and callable(value)
                    and getattr(value, "__module__", None) == getattr(plugin, "__name__", "")
                    and self.pm.parse_hookimpl_opts(plugin, attr) is None
                    and (attr in HOOKS or _did_you_mean(attr))):
                return f"{attr}() is not marked @ganzoo.hookimpl{_did_you_mean(attr)}"
        return None

    def _invalid_hookimpl(self, plugin, e: Exception) -> str:
        """pluggy's PluginValidationError, as one line saying which hook and what to change."""
        for attr in sorted(dir(plugin)):
            opts = self.pm.parse_hookimpl_opts(plugin, attr)
            if opts is None:
                continue
            hook = getattr(self.pm.hook, opts.get("specname") or attr, None)
            if hook is None or not hook.has_spec():
                continue
            function = getattr(plugin, attr)
            try:
                names = list(inspect.signature(function).parameters)
            except (TypeError, ValueError):
                continue
            spec = list(inspect.signature(hook.spec.function).parameters)
            wrong = [n for n in names if n not in spec]
            if wrong:
                return (f"{attr}({', '.join(names)}): argument {_quoted(wrong)} "
                        f"{'is' if len(wrong) == 1 else 'are'} not in the hookspec "
                        f"{hook.name}({', '.join(spec)}); not loaded")
        return " ".join(line.strip() for line in str(e).splitlines()) + "; not loaded"

    def _call(self, hook: str, info: PluginInfo, **kwargs) -> list | None:
        """One plugin's hook, called through pluggy with the other plugins left out (so
        pluggy's checks run and a failure names its plugin). The results that are not None
        come back; a failure is recorded against the plugin and None comes back."""
        plugin = self.pm.get_plugin(info.name)
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        try:
            return self.pm.subset_hook_caller(hook, others)(**kwargs)
        except PLUGIN_FAILURES as e:
            info.error = f"{hook}() failed: {_one_line(e)}"
            info.traceback = traceback.format_exc()
            return None

    def _implementers(self, hook: str) -> list[PluginInfo]:
        """The plugins implementing ``hook``, in the order they were registered."""
        names = dict.fromkeys(i.plugin_name for i in getattr(self.pm.hook, hook).get_hookimpls())
        return [self._loaded[n] for n in names]

    def _collect(self, hook: str) -> dict[str, Registered]:
        """Call ``hook`` on each plugin separately, so a failure names its plugin. What a
        plugin returns is checked before anything uses it: a wrong type or a name another
        plugin registered marks that plugin as failed, and the others keep working."""
        if hook in self._cache:
            return self._cache[hook]
        found: dict[str, Registered] = {}
        for info in self._implementers(hook):
            for items in self._call(hook, info) or []:
                problem = _check_items(hook, items)
                if problem:
                    info.error = f"{hook}() {problem}"
                    self._meant(hook, items, info)
                    continue
                for obj in items:
                    if obj.name in found:
                        info.error = self._conflict(hook, found[obj.name], info, obj.name)
                        continue
                    found[obj.name] = Registered(obj.name, obj, info)
                    info.provides.append(obj.name)
        self._cache[hook] = found
        return found

    def _meant(self, hook: str, items: Any, info: PluginInfo) -> None:
        """Names a rejected result meant to register: using one says which plugin failed."""
        kind = _kind(hook)
        for obj in items if isinstance(items, (list, tuple)) else [items]:
            name = getattr(obj, "name", None)
            if isinstance(name, str) and name:
                self._unavailable.setdefault(
                    (kind, name), f"{kind} '{name}' is unavailable: plugin '{info.name}' "
                                  f"failed to load: {info.error}")

    def _conflict(self, hook: str, first: Registered, info: PluginInfo, name: str) -> str:
        """A name two plugins register: kept from neither when looked up (which one the user
        meant is unknown), recorded against the later plugin."""
        message = (f"{_kind(hook)} name '{name}' is registered twice:"
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
        if (kind, name) in self._unavailable:
            raise GanzooError(self._unavailable[kind, name])
        broken = [p for p in self.plugins if p.error and p.name == name]
        if broken:
            raise GanzooError(f"{kind} '{name}' is unavailable: plugin '{name}' failed to "
                              f"load: {broken[0].error}")
        hint = difflib.get_close_matches(name, table, n=3, cutoff=0.5)
        known = ", ".join(sorted(table)) or "none"
        suggestion = f"; did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
        raise GanzooError(f"unknown {kind} '{name}'{suggestion} (known: {known})"
                          f"{self._failed_note()}")

    def _failed_note(self, most: int = 2) -> str:
        """The plugins that failed (the name may be one of theirs), for an unknown name."""
        broken = [p for p in self.plugins if p.error]
        note = "".join(f"; plugin '{p.name}' failed to load: {p.error}" for p in broken[:most])
        if len(broken) > most:
            note += f"; {len(broken) - most} more failed (see `ganzoo plugins`)"
        return note

    def add_commands(self, cli) -> None:
        """Let plugins add commands to ``cli`` (a click group holding the built-in commands).

        A name that is taken is never replaced: a built-in command's, or another plugin's
        (then neither plugin's command is kept, and running it says why). Either is an error
        naming both, recorded against the later plugin. A plugin whose hook fails adds
        nothing. The hooks run once per registry; later calls add the same commands again
        (a click group can outlive a registry in-process)."""
        for name in [n for n, c in cli.commands.items() if hasattr(c, PLUGIN_COMMAND)]:
            del cli.commands[name]     # an earlier registry's (ganzoo run again in-process)
        if self._commands is None:
            self._commands = self._plugin_commands(cli)
        cli.commands.update(self._commands)

    def _plugin_commands(self, cli) -> dict[str, Any]:
        builtin = dict(cli.commands)
        added: dict[str, Any] = {}
        owners: dict[str, PluginInfo] = {}
        try:
            for info in self._implementers("ganzoo_commands"):
                cli.commands.clear()
                cli.commands.update({**builtin, **added})
                if self._call("ganzoo_commands", info, cli=cli) is None:
                    continue                          # failed: recorded, nothing kept
                for name, command in cli.commands.items():
                    if builtin.get(name, added.get(name)) is command:
                        continue
                    if name in builtin:
                        info.error = (f"command name '{name}' is registered twice: by ganzoo "
                                      f"(the built-in command, which is kept) and by plugin "
                                      f"'{info.name}' ({info.module})")
                    elif name in owners:
                        first = owners[name]
                        info.error = (f"command name '{name}' is registered twice: by plugin "
                                      f"'{first.name}' ({first.module}) and by plugin "
                                      f"'{info.name}' ({info.module})")
                        added[name] = _unavailable_command(name, info.error)
                    else:
                        added[name], owners[name] = command, info
        finally:
            cli.commands.clear()
            cli.commands.update(builtin)
        for name, command in added.items():
            setattr(command, PLUGIN_COMMAND, owners[name].name)
        return added


# Marks a click command a plugin added, so a later registry can take it away again.
PLUGIN_COMMAND = "_ganzoo_plugin"

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


def _kind(hook: str) -> str:
    """"architecture" for "ganzoo_architectures"."""
    return hook.removeprefix(PROJECT + "_")[:-1]


HOOKS = sorted(n for n in vars(hookspecs) if n.startswith(PROJECT + "_"))


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, [h for h in HOOKS if h != name], n=1, cutoff=0.8)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _unavailable_command(name: str, message: str):
    """A stand-in for a command two plugins add: running it is the error naming both."""
    import click

    def refuse(args):
        raise GanzooError(message)
    return click.Command(name, callback=refuse, help=f"(unavailable: {message})",
                         params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
                         context_settings={"ignore_unknown_options": True},
                         add_help_option=False)


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
