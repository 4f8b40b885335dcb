"""The one glob engine of syncd: watched folders, USB drives and the inventory source.

``*``, ``?`` and ``[...]`` stay within a name, ``**`` spans folders, matching is
case-sensitive like the shell. A glob without ``/`` matches a file name at any depth
when ``anywhere`` (the inventory's patterns), and at the top only otherwise (a
drive's ``music/*.csv`` and ``*.csv`` are both anchored at the drive's root).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence


def matcher(patterns: Sequence[str], anywhere: bool = True) -> Callable[[str], bool]:
    """A test of relative paths (``a/b.csv``) against the globs."""
    if "**" in patterns or (anywhere and "*" in patterns):
        return lambda path: True
    if not patterns:
        return lambda path: False
    regex = re.compile("|".join(f"(?:{pattern_regex(p, anywhere)})" for p in patterns),
                       re.DOTALL)
    return lambda path: regex.fullmatch(path) is not None


@functools.lru_cache(maxsize=128)
def cached_matcher(patterns: tuple[str, ...], anywhere: bool = True) -> Callable[[str], bool]:
    """``matcher``, compiled once per set of patterns (for per-event checks)."""
    return matcher(patterns, anywhere)


def may_hold(folder: Sequence[str], pattern: str) -> bool:
    """Could a file below ``folder`` (its path parts) match the anchored ``pattern``?

    Lets a walk skip whole folders that no pattern reaches.
    """
    segments = split(pattern)
    for i, part in enumerate(folder):
        if i >= len(segments) - 1:
            return "**" in segments[:i + 1]
        if segments[i] == "**":
            return True
        if not re.fullmatch(segment_regex(segments[i]), part, re.DOTALL):
            return False
    return True


def split(pattern: str) -> list[str]:
    """A glob's folders and name, without empty or ``.`` parts."""
    return [part for part in pattern.strip().lstrip("/").split("/") if part and part != "."]


def pattern_regex(pattern: str, anywhere: bool = True) -> str:
    """A glob as a regex over a relative path."""
    pattern = pattern.strip().removeprefix("./").lstrip("/")
    if not pattern:
        raise ValueError("empty pattern")
    if pattern == "**":
        return ".*"
    if "/" not in pattern:
        return ("(?:.*/)?" if anywhere else "") + segment_regex(pattern)
    out = []
    segments = pattern.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
        elif segment:
            out.append(segment_regex(segment) + ("" if last else "/"))
    return "".join(out)


def segment_regex(segment: str) -> str:
    out, i = [], 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            while i + 1 < len(segment) and segment[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            start = i + 1
            negate = segment[start : start + 1] in ("!", "^")
            start += negate
            end = segment.find("]", start + 1)  # a "]" first in the set is one of its members
            if end < 0:
                out.append(re.escape(c))
            else:
                members = re.sub(r"([\\\[\]&~|^])", r"\\\1", segment[start:end])
                out.append("[" + ("^/" if negate else "") + members + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)
