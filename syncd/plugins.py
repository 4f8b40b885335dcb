"""Finding adapters: the plugin manager and the registry handed to plugins.

A plugin registers an adapter class, or a reference to one (``"package.module:Class"``
with its name), which is imported when a job, or a listing, first asks for the type: a
start then imports only the adapters its jobs use (the built-ins do so).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import Distribution, entry_points
from types import ModuleType
from typing import Any, Generic, TypeVar

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


T = TypeVar("T")


class Adapters(Mapping[str, T], Generic[T]):
    """Adapter classes by name; one registered by reference is imported when first asked
    for (a ``PluginError`` if it cannot be)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def __getitem__(self, name: str) -> T:
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._entries[name] = _imported(self.kind, name, entry)
        return entry

    def __contains__(self, name: object) -> bool:  # (Mapping's would import the class)
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def offer(self, name: str, entry: T | str) -> None:
        self._entries[name] = entry


def _imported(kind: str, name: str, reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except Exception as exc:  # a broken plugin names itself, not a traceback
        raise PluginError(f"{kind} type {name!r}: cannot load {reference}: "
                          f"{type(exc).__name__}: {exc}") from None


@dataclass(slots=True)
class Registry:
    """Source and target classes by name; the first registration of a name wins."""

    sources: Adapters[type[Source | AsyncSource]] = field(
        default_factory=lambda: Adapters("source"))
    targets: Adapters[type[Target]] = field(default_factory=lambda: Adapters("target"))
    origins: dict[tuple[str, str], Origin] = field(default_factory=dict)
    shadowed: list[tuple[str, str, Origin]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # plugin name -> why it did not load
    _current: Origin = Origin("", None, "")

    def add_source(self, cls: type[Source | AsyncSource] | str, name: str | None = None
                   ) -> None:
        """Offer ``cls`` under its ``name``, or under ``name`` (an alias, e.g. ``api``).

        ``cls`` may be a reference, ``"package.module:Class"``, with ``name`` given: the
        module is imported when a job first asks for the type. Sources of either
        flavour: the engine reads both alike.
        """
        self._add("source", self.sources, cls, name)

    def add_target(self, cls: type[Target] | str, name: str | None = None) -> None:
        self._add("target", self.targets, cls, name)

    def _add(self, kind: str, table: Adapters, cls: type | str, alias: str | None = None
             ) -> None:
        if isinstance(cls, str):
            if ":" not in cls or not alias:
                raise PluginError(f"{kind} reference {cls!r}: give it as "
                                  "'package.module:Class' with its name")
            name, module = alias, cls.partition(":")[0]
        else:
            name, module = alias or str(getattr(cls, "name", "") or ""), cls.__module__
            if not name:
                raise PluginError(f"{kind} class {cls.__qualname__} has no `name`")
        origin = Origin(self._current.plugin, self._current.dist, module)
        if name in table:
            self.shadowed.append((kind, name, origin))
            return
        table.offer(name, cls)
        self.origins[(kind, name)] = origin

    def loaded(self, kind: str) -> dict[str, Any]:
        """Every ``source`` or ``target`` class by name, each imported now (a listing);
        one that cannot be is left out and told in ``failed`` under its plugin."""
        table: Adapters[Any] = self.sources if kind == "source" else self.targets
        classes = {}
        for name in table:
            try:
                classes[name] = table[name]
            except PluginError as exc:
                self.failed[self.origins[(kind, name)].plugin] = str(exc)
        return classes

    def source(self, name: str) -> type[Source | AsyncSource]:
        return _named("source", self.sources, name)

    def target(self, name: str) -> type[Target]:
        return _named("target", self.targets, name)


def _named(kind: str, table: Mapping[str, Any], name: str) -> Any:
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
