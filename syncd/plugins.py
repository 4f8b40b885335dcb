"""Finding adapters: the plugin manager and the registry handed to plugins."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import Distribution, entry_points
from types import ModuleType
from typing import Any

import pluggy

from syncd import hookspecs
from syncd.adapters import AsyncSource, Source, Target
from syncd.errors import PluginError, UserError


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an adapter class came from, for ``syncd plugins``."""

    plugin: str
    dist: Distribution | None  # read only when asked: parsing its METADATA costs start-up
    module: str

    @property
    def distribution(self) -> str:
        """``name version`` of the installed distribution, "" for a local plugin."""
        return f"{self.dist.name} {self.dist.version}" if self.dist else ""


@dataclass(slots=True)
class Registry:
    """Source and target classes by name; the first registration of a name wins."""

    sources: dict[str, type[Source | AsyncSource]] = field(default_factory=dict)
    targets: dict[str, type[Target]] = field(default_factory=dict)
    origins: dict[tuple[str, str], Origin] = field(default_factory=dict)
    shadowed: list[tuple[str, str, Origin]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # plugin name -> why it did not load
    _current: Origin = Origin("", None, "")

    def add_source(self, cls: type[Source | AsyncSource], name: str | None = None) -> None:
        """Offer ``cls`` under its ``name``, or under ``name`` (an alias, e.g. ``api``).

        Sources of either flavour: the engine reads both alike.
        """
        self._add("source", self.sources, cls, name)

    def add_target(self, cls: type[Target], name: str | None = None) -> None:
        self._add("target", self.targets, cls, name)

    def _add(self, kind: str, table: dict, cls: type, alias: str | None = None) -> None:
        name = alias or getattr(cls, "name", "")
        if not name:
            raise PluginError(f"{kind} class {cls.__qualname__} has no `name`")
        origin = Origin(self._current.plugin, self._current.dist, cls.__module__)
        if name in table:
            self.shadowed.append((kind, name, origin))
            return
        table[name] = cls
        self.origins[(kind, name)] = origin

    def source(self, name: str) -> type[Source | AsyncSource]:
        return _named("source", self.sources, name)

    def target(self, name: str) -> type[Target]:
        return _named("target", self.targets, name)


def _named(kind: str, table: dict[str, Any], name: str) -> Any:
    if name not in table:
        raise UserError(f"unknown {kind} type {name!r}", hint=f"known: {', '.join(sorted(table))}")
    return table[name]


def get_pluginmanager(
    load_entrypoints: bool = True, plugins: tuple[ModuleType | object, ...] = ()
) -> tuple[pluggy.PluginManager, Registry]:
    """Build the plugin manager and fill a registry from every plugin.

    Tests pass ``load_entrypoints=False`` and the plugins they want. A plugin whose
    import fails is recorded in ``registry.failed`` and skipped; a hook with a
    misspelt name is a ``PluginError``.
    """
    pm = pluggy.PluginManager("syncd")
    pm.add_hookspecs(hookspecs)
    registry = Registry()
    dists: dict[str, Distribution | None] = {}
    for plugin in plugins:
        pm.register(plugin)
    if load_entrypoints:
        for ep in entry_points(group="syncd"):
            if pm.has_plugin(ep.name):
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken third-party plugin must not stop the daemon
                registry.failed[ep.name] = f"{type(exc).__name__}: {exc}"
                continue
            pm.register(module, name=ep.name)
            dists[ep.name] = ep.dist
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(f"plugin {name!r}: {exc}",
                          hint="hooks are named in syncd/hookspecs.py") from None
    # pluggy calls implementations last-registered first, trylast ones at the end;
    # walking that order by hand lets each registration know its plugin.
    for impl in reversed(pm.hook.syncd_register_adapters.get_hookimpls()):
        registry._current = Origin(impl.plugin_name, dists.get(impl.plugin_name), "")
        impl.function(registry=registry)
    registry._current = Origin("", None, "")
    return pm, registry
