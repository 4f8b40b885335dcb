"""The hooks a syncd plugin may implement: the contract between syncd and plugins.

Every hook is prefixed ``syncd_``. A plugin module implements some of them with
``@syncd.hookimpl`` and is found through the ``syncd`` entry-point group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from syncd.adapters import RunSummary
    from syncd.plugins import Registry

hookspec = pluggy.HookspecMarker("syncd")


@hookspec
def syncd_register_adapters(registry: Registry) -> None:
    """Add source and target classes with ``registry.add_source(cls)`` / ``add_target(cls)``.

    The first class registered under a name wins, so a plugin overrides a built-in
    adapter of the same name (built-ins register with ``trylast=True``).
    """


@hookspec
def syncd_run_finished(summary: RunSummary) -> None:
    """Called once a run has ended (completed, failed or cancelled).

    The return value is ignored; an exception is logged and does not change the run.
    """
