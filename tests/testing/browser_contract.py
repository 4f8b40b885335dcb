"""The browser target and source through the contract suites, with real Chromium.

Imported by test_adapter_contract.py (where they run, and where the registry check
finds them); kept here so that module stays readable. Both drive the fake casting
platform (tests/fakes/casting.py) through ``[remotes.casting]`` with the form login
of tests/browser_setup.py; the password is a ``{file = …}`` secret. Every Chromium a
test starts carries a marker in its environment, and none may outlive the test.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.testing import RecordTargetContract, SourceContract
from syncd_builtin.browser_source import BrowserSource
from syncd_builtin.browser_target import BrowserTarget
from tests import browser_setup as bs
from tests.fakes.casting import CastingFake
from tests.poll import wait_until

PASSWORD = "pw-contract-4711"
LOGIN = tomllib.loads(f"steps = {bs.LOGIN}")["steps"]
#: one browser, quickly: a step that has not happened within 3 s will not
BROWSER = {"remote": "casting", "executable": bs.CHROMIUM, "step_timeout": 3,
           "args": ["--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync"]}


def casting_remote(site: CastingFake, tmp_path: Path) -> dict[str, Any]:
    """``[remotes.casting]``: the fake's URL and its login form."""
    secret = tmp_path / "casting.password"
    secret.write_text(PASSWORD, encoding="utf-8")
    secret.chmod(0o600)
    return {"casting": {"base_url": site.url, "auth": {
        "type": "form", "username": site.user, "password": {"file": str(secret)},
        "steps": LOGIN}}}


def no_chromium_left(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Chromium and Playwright's driver inherit the marker; none may outlive the test."""
    mark = bs.marker()
    monkeypatch.setenv(bs.MARK, mark)
    yield
    wait_until(lambda: not bs.chromium_left(mark), timeout=10,
               message=lambda: f"Chromium processes left: {bs.chromium_left(mark)}")


@bs.needs_chromium
class TestBrowserTarget(RecordTargetContract):
    """Dates on the fake's calendar, keyed by the date. The fake cannot fail a request
    transiently, lose an answer or refuse one with a given error type (a refused form
    is a step that times out, a ``target`` error), so those tests skip; the lost answer
    the suite injects into the adapter, and kills, do run."""

    adapter = BrowserTarget

    @pytest.fixture(autouse=True)
    def chromium_checked(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        yield from no_chromium_left(monkeypatch)

    def record(self, i: int) -> dict[str, Any]:
        return {"id": f"2027-03-{i + 1:02d}", "name": f"shoot {i}", "status": "blocked"}

    @pytest.fixture
    def site(self) -> Iterator[CastingFake]:
        with CastingFake(password=PASSWORD, delay_ms=10) as fake:
            yield fake

    @pytest.fixture
    def target_remotes(self, site: CastingFake, tmp_path: Path) -> dict[str, Any]:
        return casting_remote(site, tmp_path)

    @pytest.fixture
    def target_options(self) -> dict[str, Any]:
        in_month = "td[data-date='{id}']"  # ?month=<a date> lists that date alone
        return {**BROWSER, "key": ["id"],
                "exists": [{"goto": "/calendar?month={id}"}, {"present": in_month}],
                "create": [{"goto": "/calendar"}, {"fill": "#date", "value": "{id}"},
                           {"select": "#status", "value": "{status}"},
                           {"fill": "#note", "value": "{name}"}, {"click": "#save"},
                           {"wait_for": "text=Saved"}],
                "update": [{"goto": "/calendar/edit?date={remote_id}"},
                           {"select": "#status", "value": "{status}"},
                           {"fill": "#note", "value": "{name}"}, {"click": "#save"},
                           {"wait_for": in_month}],
                "delete": [{"goto": "/calendar?month={id}"}, {"present": in_month},
                           {"click": f"{in_month} .remove"}, {"wait_for": "text=Removed"}]}

    @pytest.fixture
    def remote_keys(self, site: CastingFake) -> Any:
        """Each date on the calendar, once per time it was entered and not removed."""
        return lambda: [date for date in dict(site.entries)
                        for _ in range(max(1, site.creates[date] - site.removes[date]))]

    @pytest.fixture
    def fail_next(self) -> None:
        return None

    @pytest.fixture
    def lose_next_answer(self) -> None:
        return None

    @pytest.fixture
    def refuse_next(self) -> None:
        return None


@bs.needs_chromium
class TestBrowserSource(SourceContract):
    """Five bookings, three a page: a checkpoint is the next page's URL. A browser
    source has no unreadable records (a missing cell reads as null), so no bad source."""

    adapter = BrowserSource

    @pytest.fixture(autouse=True)
    def chromium_checked(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        yield from no_chromium_left(monkeypatch)

    @pytest.fixture
    def site(self) -> Iterator[CastingFake]:
        with CastingFake(password=PASSWORD, bookings=bs.bookings(5), page_size=3) as fake:
            yield fake

    @pytest.fixture
    def source_remotes(self, site: CastingFake, tmp_path: Path) -> dict[str, Any]:
        return casting_remote(site, tmp_path)

    @pytest.fixture
    def make_source(self) -> Any:
        options = BrowserSource.Options(
            **BROWSER, steps=[{"goto": "/bookings"}, {"wait_for": "#bookings"}],
            rows="tr.booking", fields={"id": "@data-id", "date": "td.date",
                                       "production": "td.production", "role": "td.role"},
            next="a.next")
        return lambda: BrowserSource(options)

    @pytest.fixture
    def source_fields(self) -> list[str]:
        return ["id", "date", "production"]
