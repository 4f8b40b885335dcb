"""COPY's text format: the fast path (no value needs escaping) and the escaped one agree."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from syncd_builtin.sql_copy import copy_text

PLAIN = ["title", "", "ünï 🎵", None, True, False, 1950, 2.5, datetime(2026, 11, 29, 19)]
TRICKY = ["tab\there", "new\nline", "cr\rlf", "back\\slash", "\\N", "a\tb\\c"]


def escaped(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    text = str(value)
    for raw, esc in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        text = text.replace(raw, esc)
    return text


@pytest.mark.parametrize("tricky", [False, True])
def test_copy_text_is_each_value_escaped_tab_separated_one_line_a_row(tricky: bool) -> None:
    rng = random.Random(7)
    values = PLAIN + (TRICKY if tricky else [])
    rows = [tuple(rng.choice(values) for _ in range(5)) for _ in range(300)]
    if tricky:
        rows.append(("plain", "\\N", None, "x", "y"))  # a literal \N beside a NULL
    expected = "".join("\t".join(escaped(v) for v in row) + "\n" for row in rows)
    assert copy_text(rows) == expected
    assert copy_text([]) == ""
