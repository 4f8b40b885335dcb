"""``POST /v1/hooks/{job}`` (SPEC §10) on the real app, store and engine.

Signed deliveries start runs with trigger ``webhook``; a bad or missing signature is
401 and starts nothing; a replayed delivery id is answered 200 with the first run,
also by a daemon restarted on the same store; a body over the limit is 413.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient

from syncd.api import make_app
from syncd.api.hooks import signature
from syncd.api.requests import MAX_BODY
from tests.api_fixtures import MUSIC_LINES, Harness, answer, build, csv_job, write_lines
from tests.poll import wait_for

SECRET = "hook-secret-7f3a"
TOKEN = "bearer-token-for-the-api"
Client = Callable[[], Awaitable[tuple[TestClient, Harness]]]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    write_lines(state / "music.csv", MUSIC_LINES)
    write_lines(state / "other.csv", MUSIC_LINES[:4])
    (tmp_path / "hook.secret").write_text(SECRET + "\n")
    return state


def jobs(state_dir: Path) -> dict[str, Any]:
    secret = {"file": str(state_dir.parent / "hook.secret")}
    return {"music": csv_job(state_dir / "music.csv", "music", webhook={"secret": secret}),
            "plain": csv_job(state_dir / "music.csv", "plain")}


@pytest.fixture
async def client(aiohttp_client: Any, state_dir: Path) -> AsyncIterator[Client]:
    """A daemon's app; called again, a restarted daemon on the same store."""
    harnesses: list[Harness] = []

    async def make() -> tuple[TestClient, Harness]:
        h = build(state_dir, jobs(state_dir), token=TOKEN)
        harnesses.append(h)
        return await aiohttp_client(make_app(h.context)), h

    yield make
    for h in harnesses:
        await h.close()
        h.store.close()


def signed(body: bytes, delivery: str | None = None,
           secret: str = SECRET) -> dict[str, str]:
    headers = {"X-Syncd-Signature": signature(secret, body), "Content-Type": "application/json"}
    if delivery:
        headers["X-Syncd-Delivery"] = delivery
    return headers


def run_count(h: Harness) -> int:
    return h.rows("SELECT COUNT(*) FROM sync_runs")[0][0]


async def finished(h: Harness, run_id: int) -> str:
    async def status() -> str | None:
        run = await asyncio.to_thread(h.store.get_run, run_id)
        return run.status if run and run.status in ("completed", "failed") else None

    return await wait_for(status, 20)


async def test_a_signed_delivery_starts_a_webhook_run_without_the_bearer_token(
        client: Client) -> None:
    c, h = await client()
    body = json.dumps({"event": "push", "anything": [1, 2]}).encode()
    data = await answer(await c.post("/v1/hooks/music", data=body, headers=signed(body)), 202)
    assert data["job"] == "music" and data["replayed"] is False
    assert await finished(h, data["syncRunId"]) == "completed"
    run = await answer(await c.get(f"/v1/sync/{data['syncRunId']}",
                                   headers={"Authorization": f"Bearer {TOKEN}"}), 200)
    assert run["trigger"] == "webhook"
    job = await answer(await c.get("/v1/jobs/music",
                                   headers={"Authorization": f"Bearer {TOKEN}"}), 200)
    assert "webhook" in job["triggers"]


async def test_the_secret_is_in_no_answer_and_no_log_line(client: Client) -> None:
    c, _ = await client()
    seen = []
    with structlog.testing.capture_logs() as logs:
        for headers in (signed(b"{}", "d-1"), {"X-Syncd-Signature": "sha256=00"}):
            response = await c.post("/v1/hooks/music", data=b"{}", headers=headers)
            seen.append(await response.text())
        spec = await c.get("/v1/jobs/music", headers={"Authorization": f"Bearer {TOKEN}"})
        seen.append(await spec.text())
    assert SECRET not in repr(logs) + "".join(seen)
    assert any(e["event"] == "webhook refused: bad or missing signature" for e in logs)


@pytest.mark.parametrize("headers", [
    {},  # no signature
    {"X-Syncd-Signature": "sha256=" + "0" * 64},
    {"X-Syncd-Signature": signature("wrong-secret", b"{}")},
    {"X-Syncd-Signature": "md5=abc"},
    {"X-Syncd-Signature": signature(SECRET, b"{}").upper()},
], ids=["missing", "zeros", "other-secret", "other-scheme", "upper-case"])
async def test_a_bad_or_missing_signature_is_401_and_starts_nothing(
        client: Client, headers: dict[str, str]) -> None:
    c, h = await client()
    error = await answer(await c.post("/v1/hooks/music", data=b"{}", headers=headers), 401)
    assert error["code"] == "bad_signature"
    assert run_count(h) == 0
    # the body signed is the body checked: a signature of another body is refused too
    other = signed(b'{"a": 1}')
    await answer(await c.post("/v1/hooks/music", data=b'{"a": 2}', headers=other), 401)
    assert run_count(h) == 0


async def test_a_replay_is_answered_with_the_first_run_also_after_a_restart(
        client: Client) -> None:
    c, h = await client()
    body = b'{"id": "evt-1"}'
    first = await answer(await c.post("/v1/hooks/music", data=body,
                                      headers=signed(body, "evt-1")), 202)
    await finished(h, first["syncRunId"])
    again = await answer(await c.post("/v1/hooks/music", data=body,
                                      headers=signed(body, "evt-1")), 200)
    assert again == {"syncRunId": first["syncRunId"], "job": "music", "replayed": True}
    assert run_count(h) == 1
    # two copies of a new delivery at once: one run
    body2 = b'{"id": "evt-2"}'
    answers = await asyncio.gather(*(c.post("/v1/hooks/music", data=body2,
                                            headers=signed(body2, "evt-2")) for _ in range(3)))
    statuses = sorted(r.status for r in answers)
    assert statuses == [200, 200, 202], statuses
    ids = {(await r.json())["data"]["syncRunId"] for r in answers}
    assert len(ids) == 1
    await finished(h, ids.pop())
    await h.close()

    c2, h2 = await client()  # the daemon restarted on the same database
    replay = await answer(await c2.post("/v1/hooks/music", data=body,
                                        headers=signed(body, "evt-1")), 200)
    assert replay["syncRunId"] == first["syncRunId"]
    assert run_count(h2) == 2


async def test_deliveries_go_with_their_runs_at_cleanup(client: Client) -> None:
    c, h = await client()
    body = b"{}"
    first = await answer(await c.post("/v1/hooks/music", data=body,
                                      headers=signed(body, "old")), 202)
    await finished(h, first["syncRunId"])
    await asyncio.to_thread(h.store.delete_runs, [first["syncRunId"]])
    assert h.rows("SELECT COUNT(*) FROM webhook_deliveries")[0][0] == 0
    # forgotten with its run: the same id is a new delivery now
    await answer(await c.post("/v1/hooks/music", data=body, headers=signed(body, "old")), 202)


async def test_a_body_over_the_limit_is_413(client: Client) -> None:
    c, h = await client()
    body = b"x" * (MAX_BODY + 1)
    error = await answer(await c.post("/v1/hooks/music", data=body, headers=signed(body)), 413)
    assert error["code"] == "too_large"
    assert run_count(h) == 0


async def test_a_job_without_a_webhook_or_no_job_is_404(client: Client) -> None:
    c, h = await client()
    for name in ("plain", "nope"):
        await answer(await c.post(f"/v1/hooks/{name}", data=b"{}",
                                  headers=signed(b"{}")), 404)
    assert run_count(h) == 0


async def test_the_source_identifier_follows_the_trigger_rules(
        client: Client, state_dir: Path, tmp_path: Path) -> None:
    c, h = await client()
    inside = json.dumps({"sourceIdentifier": str(state_dir / "other.csv")}).encode()
    data = await answer(await c.post("/v1/hooks/music", data=inside,
                                     headers=signed(inside)), 202)
    await finished(h, data["syncRunId"])
    run = await asyncio.to_thread(h.store.get_run, data["syncRunId"])
    assert run is not None and run.source_identifier == str(state_dir / "other.csv")
    outside = tmp_path / "elsewhere.csv"
    write_lines(outside, MUSIC_LINES)
    body = json.dumps({"sourceIdentifier": str(outside)}).encode()
    error = await answer(await c.post("/v1/hooks/music", data=body, headers=signed(body)), 400)
    assert error["code"] == "forbidden_path"
    assert run_count(h) == 1
