"""Run notifications (SPEC §10) from the built-in notify plugin, to real receivers.

A real aiohttp receiver takes the webhook, a real aiosmtpd server the mail. A failed
run is notified once per channel; a receiver that errs is retried; one that is down is
logged and counted in ``/metrics`` and the run is unaffected; ``digest = "daily"``
sends one message for the day's runs. No secret travels in a message or a log line.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from syncd.api import make_app
from syncd.config.notify import NotifyConfig
from syncd.engine import Request
from syncd.triggers.digest import send_digest
from syncd_builtin import notify_send
from tests.api_fixtures import MUSIC_LINES, Harness, build, csv_job, write_lines
from tests.fakes.hook_receiver import HookReceiver
from tests.fakes.smtp import USER, SmtpServer, free_port
from tests.poll import wait_for

SMTP_PASSWORD = "smtp-pass-Zq81"
URL_TOKEN = "url-token-9Kx2"
# the fake SMTP server wants a login over plain text, as a local relay may
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify_send, "BACKOFF", (0.01, 0.05))


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_SMTP_PASSWORD", SMTP_PASSWORD)


@pytest.fixture
async def receiver() -> AsyncIterator[HookReceiver]:
    r = await HookReceiver().start()
    yield r
    await r.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(SMTP_PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
async def harness(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[tuple[Harness, TestClient]]:
    state = tmp_path / "state"
    write_lines(state / "music.csv", MUSIC_LINES)
    jobs = {"music": csv_job(state / "music.csv", "music"),
            "broken": csv_job(state / "music.csv", "broken",
                              mapping={"external_id": "id", "genre": "genre"})}
    h = build(state, jobs)
    client = await aiohttp_client(make_app(h.context))
    yield h, client
    await h.close()


def settings(**values: Any) -> NotifyConfig:
    return NotifyConfig.model_validate(values)


def email(smtp: SmtpServer) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": smtp.port, "from": "syncd@example.test",
            "to": ["ops@example.test"], "username": USER, "starttls": False,
            "password": {"env": "SYNCD_TEST_SMTP_PASSWORD"}}


async def notifications(client: TestClient) -> dict[tuple[str, str], float]:
    text = await (await client.get("/metrics")).text()
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name == "syncd_notifications":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out[(sample.labels["channel"], sample.labels["outcome"])] = sample.value
    return out


async def counted(client: TestClient, want: dict[tuple[str, str], float]) -> None:
    async def reached() -> bool:
        return await notifications(client) == want
    await wait_for(reached, 15)


async def test_a_failed_run_is_sent_once_by_webhook_and_mail(
        harness: tuple[Harness, TestClient], receiver: HookReceiver, smtp: SmtpServer,
        secrets: None) -> None:
    h, client = harness
    h.engine.announce.notify = settings(on=["failed"], webhook=receiver.url(),
                                        email=email(smtp))
    with structlog.testing.capture_logs() as logs:
        failed_id, outcome = await h.engine.run(Request("broken", "api"))
        assert outcome.status == "failed"
        _, outcome = await h.engine.run(Request("music", "api"))
        assert outcome.status == "completed"
        await counted(client, {("webhook", "sent"): 1, ("email", "sent"): 1})
    assert len(receiver.received) == 1
    document = receiver.received[0]
    assert document["event"] == "run_finished"
    run = document["run"]
    assert (run["syncRunId"], run["job"], run["status"], run["trigger"]) == (
        failed_id, "broken", "failed", "api")
    assert run["errorMessage"] and "genre" in run["errorMessage"]
    assert set(run["counters"]) >= {"processed", "failed"}
    await wait_for(lambda: len(smtp.messages) == 1, 10)
    mail = smtp.messages[0]
    assert f"run {failed_id} failed" in mail["Subject"]
    assert mail["To"] == "ops@example.test"
    assert "genre" in mail.get_payload()
    text = repr(logs) + repr(receiver.received) + mail.as_string()
    assert SMTP_PASSWORD not in text


async def test_a_busy_receiver_is_retried(
        harness: tuple[Harness, TestClient], receiver: HookReceiver) -> None:
    h, client = harness
    receiver.fail_next = 2
    h.engine.announce.notify = settings(on=["completed"], webhook=receiver.url(), attempts=4)
    await h.engine.run(Request("music", "api"))
    await counted(client, {("webhook", "sent"): 1})
    assert receiver.attempts == 3 and len(receiver.received) == 1
    assert receiver.received[0]["run"]["counters"]["failed"] == 2  # its two bad lines


async def test_a_receiver_that_is_down_is_logged_and_counted_and_the_run_is_unaffected(
        harness: tuple[Harness, TestClient], monkeypatch: pytest.MonkeyPatch) -> None:
    h, client = harness
    monkeypatch.setenv("SYNCD_TEST_HOOK_URL", f"http://127.0.0.1:{free_port()}/h/{URL_TOKEN}")
    h.engine.announce.notify = settings(on=["completed", "failed"], attempts=3,
                                        webhook={"env": "SYNCD_TEST_HOOK_URL"})
    with structlog.testing.capture_logs() as logs:
        run_id, outcome = await asyncio.wait_for(h.engine.run(Request("music", "api")), 20)
        assert outcome.status == "completed"
        await counted(client, {("webhook", "failed"): 1})
    run = await asyncio.to_thread(h.store.get_run, run_id)
    assert run is not None and run.status == "completed" and run.error_message is None
    failures = [e for e in logs if e["event"] == "notification could not be delivered"]
    assert len(failures) == 1 and failures[0]["log_level"] == "error"
    assert "cannot connect" in failures[0]["error"]
    assert URL_TOKEN not in repr(logs)


async def test_the_daily_digest_sends_one_message_for_the_days_runs(
        harness: tuple[Harness, TestClient], receiver: HookReceiver, smtp: SmtpServer,
        secrets: None) -> None:
    h, client = harness
    h.engine.announce.notify = settings(on=["failed", "completed"], digest="daily",
                                        webhook=receiver.url(), email=email(smtp))
    first, _ = await h.engine.run(Request("broken", "api"))
    second, _ = await h.engine.run(Request("music", "api"))
    summaries = await send_digest(h.engine)
    assert [s.run_id for s in summaries] == [first, second]
    await counted(client, {("webhook", "sent"): 1, ("email", "sent"): 1})
    assert len(receiver.received) == 1  # no message per run with a digest
    digest = receiver.received[0]
    assert digest["event"] == "digest"
    assert [r["syncRunId"] for r in digest["runs"]] == [first, second]
    assert digest["counts"] == {"failed": 1, "completed": 1}
    await wait_for(lambda: len(smtp.messages) == 1, 10)
    assert "daily digest: 1 completed, 1 failed" in smtp.messages[0]["Subject"]


def test_the_notify_section_names_a_bad_key(tmp_path: Path) -> None:
    from syncd.config import validate
    from syncd.errors import ConfigError

    for bad, where in (({"on": ["broken"]}, "notify.on"),
                       ({"webhook": "ftp://x"}, "notify.webhook"),
                       ({"digest_at": "25:00"}, "notify.digest_at"),
                       ({"email": {"host": "h", "from": "a@b", "to": []}}, "notify.email.to")):
        with pytest.raises(ConfigError) as info:
            validate({"notify": bad})
        assert where in str(info.value), str(info.value)
    assert os.environ.get("SYNCD_TEST_SMTP_PASSWORD") is None
