"""Contract suites: subclass one in a test module and provide the fixtures it names.

Each suite is a class of tests, in the manner of tox's or APScheduler's plugin tests;
the subclass says which adapter it covers (``adapter = MyTarget``) and how to make it.
"""

from syncd.testing.contracts.base import adapters_without_contract, contract_of
from syncd.testing.contracts.record_target import RecordTargetContract
from syncd.testing.contracts.source import SourceContract
from syncd.testing.contracts.store_target import StoreTargetContract

__all__ = ["RecordTargetContract", "SourceContract", "StoreTargetContract",
           "adapters_without_contract", "contract_of"]
