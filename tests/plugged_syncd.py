"""``syncd`` with the test adapters installed beside the built-in ones, as a user's plugins.

Run as ``python -m tests.plugged_syncd ARGS``: the same command line, with the in-memory
source, the example ``restish`` target and the ``leaky`` target registered too.
"""

from __future__ import annotations

import sys
from typing import Any

from syncd import bootstrap
from syncd.engine import memory
from syncd.plugins import get_pluginmanager
from tests import leaky, restish

TEST_PLUGINS = (memory, restish, leaky)


def _with_test_plugins(load_entrypoints: bool = True, plugins: tuple[Any, ...] = ()) -> Any:
    return get_pluginmanager(load_entrypoints, (*plugins, *TEST_PLUGINS))


if __name__ == "__main__":
    bootstrap.get_pluginmanager = _with_test_plugins  # type: ignore[assignment]
    from syncd.cli.main import main

    sys.exit(main())
