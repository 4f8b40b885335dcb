"""Globs over relative paths: ``*``, ``?`` and ``[...]`` within a name, ``**/`` across
folders, and a glob without ``/`` matching a file name at any depth (case-sensitive)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence


def matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """A test of relative paths against the globs (case-sensitive, like the shell)."""
    if "*" in patterns or "**" in patterns:
        return lambda path: True
    regex = re.compile("|".join(f"(?:{pattern_regex(p)})" for p in patterns), re.DOTALL)
    return lambda path: regex.fullmatch(path) is not None


def pattern_regex(pattern: str) -> str:
    """A glob as a regex: ``*``, ``?`` and ``[...]`` stay within a name, ``**/`` spans
    folders; a glob without ``/`` matches a file name at any depth."""
    pattern = pattern.strip().removeprefix("./").lstrip("/")
    if not pattern:
        raise ValueError("empty pattern")
    if "/" not in pattern:
        return "(?:.*/)?" + segment_regex(pattern)
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
