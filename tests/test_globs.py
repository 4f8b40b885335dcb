"""The one glob engine: watched folders, USB drives and the inventory source agree."""

from __future__ import annotations

import pytest

from syncd.globs import matcher, may_hold


@pytest.mark.parametrize(("pattern", "path", "anywhere", "anchored"), [
    ("*.csv", "x.csv", True, True),
    ("*.csv", "music/x.csv", True, False),  # a bare name: any depth, or the top only
    ("music/*.csv", "music/x.csv", True, True),
    ("music/*.csv", "music/sub/x.csv", False, False),
    ("**/*.csv", "a/b/c.csv", True, True),
    ("a/**/b/*.txt", "a/b/z.txt", True, True),
    ("a/**/b/*.txt", "a/q/r/b/z.txt", True, True),
    ("x?/[ab]*.csv", "xy/a1.csv", True, True),
    ("x?/[!ab]*.csv", "xy/a1.csv", False, False),
    ("**", "any/thing", True, True),
    ("*.CSV", "x.csv", False, False),  # case-sensitive, like the shell
])
def test_matching(pattern: str, path: str, anywhere: bool, anchored: bool) -> None:
    assert matcher([pattern], anywhere=True)(path) is anywhere
    assert matcher([pattern], anywhere=False)(path) is anchored


@pytest.mark.parametrize(("folder", "pattern", "expected"), [
    ((), "music/*.csv", True),
    (("music",), "music/*.csv", True),
    (("video",), "music/*.csv", False),  # a walk skips it whole
    (("music", "sub"), "music/*.csv", False),
    (("a", "b", "c"), "**/*.csv", True),
    (("a", "q"), "a/**/b/*.txt", True),
    (("z",), "a/**/b/*.txt", False),
])
def test_may_hold(folder: tuple[str, ...], pattern: str, expected: bool) -> None:
    assert may_hold(folder, pattern) is expected
