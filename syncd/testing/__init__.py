"""Helpers for adapter authors: an in-memory remote, fixtures and contract suites."""

from syncd.testing.remote import MemoryRemote

__all__ = ["MemoryRemote"]
