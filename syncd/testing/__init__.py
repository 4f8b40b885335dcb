"""Helpers for adapter authors: an in-memory remote, a store and engine, contract suites.

The pytest plugin (``syncd.testing.plugin``, loaded by its ``pytest11`` entry point)
gives the fixtures ``syncd_store``, ``syncd_engine`` and ``memory_remote``; a test module
subclasses a contract suite to run it against its adapter::

    from syncd.testing import RecordTargetContract

    class TestMyTarget(RecordTargetContract):
        adapter = MyTarget

        @pytest.fixture
        def target_options(self, memory_remote):
            return {"url": memory_remote.url}
"""

import pytest

pytest.register_assert_rewrite("syncd.testing.contracts")

from syncd.testing.contracts import (  # noqa: E402
    RecordTargetContract,
    SourceContract,
    StoreTargetContract,
    adapters_without_contract,
    contract_of,
)
from syncd.testing.engine import make_engine, make_http, make_registry, run_job  # noqa: E402
from syncd.testing.remote import MemoryRemote  # noqa: E402

__all__ = ["MemoryRemote", "RecordTargetContract", "SourceContract", "StoreTargetContract",
           "adapters_without_contract", "contract_of", "make_engine", "make_http",
           "make_registry", "run_job"]
