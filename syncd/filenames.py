"""File names as text: runs, locks and records keep a source's name as UTF-8 text.

A name of other bytes (``caf\\xe9.csv``, written by an old Latin-1 system) comes back
from the OS with surrogates (PEP 383), which no database takes. Such a file is refused,
by its name with those bytes shown escaped.
"""

from __future__ import annotations

import os


def is_text(name: str) -> bool:
    """Whether ``name`` is UTF-8 text (holds no surrogate)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(name: str) -> str:
    """``name`` as text, any byte that is not UTF-8 written as ``\\xe9``."""
    try:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name makes (from JSON, say)
        return name.encode("utf-8", "backslashreplace").decode()
