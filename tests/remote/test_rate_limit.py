"""A remote's rate limit across runs (threads with loops of their own), the remote's own
quota headers, Retry-After, and the request metrics."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from syncd.api.metrics import RemoteCollector
from syncd.config import validate
from syncd.errors import RateLimited
from syncd.remote import stats
from syncd.remote.http import HttpFactory, Response, retry_after
from syncd.remote.limits import exhausted_for
from tests.fakes.ratelimited import RateLimitedServer

_names = itertools.count()


def factory(server: RateLimitedServer, **remote: Any) -> tuple[HttpFactory, str]:
    name = f"limited{next(_names)}"
    config = validate({"remotes": {name: {"base_url": server.url, **remote}}})
    return HttpFactory.from_config(config.remotes), name


def work(made: HttpFactory, name: str, count: int, **overrides: Any) -> list[Any]:
    async def go() -> list[Any]:
        client = made(name, **overrides)
        client.initial_delay = 0.01
        try:
            return await asyncio.gather(*(client.request("GET", "/work") for _ in range(count)),
                                        return_exceptions=True)
        finally:
            await client.close()

    return asyncio.run(go())


def in_threads(made: HttpFactory, name: str, threads: int, each: int) -> list[Any]:
    results: list[Any] = []
    lock, start = threading.Lock(), threading.Barrier(threads)

    def run() -> None:
        start.wait()
        found = work(made, name, each)
        with lock:
            results.extend(found)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    return results


def statuses(results: list[Any]) -> list[Any]:
    return [r.status if isinstance(r, Response) else repr(r) for r in results]


def test_four_runs_sharing_a_remote_see_no_429_and_get_the_whole_rate() -> None:
    limit = 20
    with RateLimitedServer(limit=limit, period=1.0) as server:
        made, name = factory(server, rate_limit=f"{limit}/s", concurrency=4)
        results = in_threads(made, name, threads=4, each=25)
    assert statuses(results) == [200] * 100
    assert server.rejected == 0
    starts = sorted(server.accepted)
    rate = (len(starts) - 1) / (starts[-1] - starts[0])  # per-second limits are paced evenly
    assert limit * 0.95 <= rate <= limit * 1.05, rate
    assert max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts) <= limit
    counted = stats.snapshot()
    assert counted.requests[(name, "200")] == 100
    assert counted.rate_limit_wait_s[name] > 1.0


@pytest.mark.parametrize("prefix", ["", "X-"])
def test_quota_headers_hold_requests_until_the_reset(prefix: str) -> None:
    """No configured limit: the answers' RateLimit-Remaining = 0 alone pauses the client."""
    with RateLimitedServer(limit=5, period=1.0, quota_headers=prefix) as server:
        made, name = factory(server, concurrency=1)
        results = work(made, name, 12)
    assert statuses(results) == [200] * 12
    assert server.rejected == 0
    assert server.accepted[-1] - server.accepted[0] >= 1.0  # three windows were needed


def test_quota_header_forms() -> None:
    assert exhausted_for({"RateLimit-Remaining": "0", "RateLimit-Reset": "7"}) == 7
    assert exhausted_for({"x-ratelimit-remaining": "3", "x-ratelimit-reset": "7"}) == 0
    github = str(int(time.time()) + 30)  # GitHub sends a Unix time
    assert 28 <= exhausted_for({"X-RateLimit-Remaining": "0",
                                "X-RateLimit-Reset": github}) <= 30
    assert exhausted_for({"RateLimit": '"default";r=0;t=12'}) == 12
    assert exhausted_for({"RateLimit": "limit=10, remaining=0, reset=4"}) == 4
    assert exhausted_for({"RateLimit-Remaining": "zero", "RateLimit-Reset": "4"}) == 0


def answer(retry: str) -> Response:
    return Response(429, {"Retry-After": retry}, b"")


def test_retry_after_in_both_forms() -> None:
    assert retry_after(answer("12")) == 12
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= (retry_after(answer(future)) or 0) <= 30
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert retry_after(answer(past)) == 0
    assert retry_after(answer("soon")) is None


def test_jitter_never_shortens_the_remotes_wait() -> None:
    with RateLimitedServer(limit=100) as server:
        made, name = factory(server, retry={"attempts": 3, "max_delay": 5})
        server.fail_next(503, "1")
        assert statuses(work(made, name, 1)) == [200]
    first, second = server.arrivals
    assert second - first >= 1.0
    assert stats.snapshot().retries[name] == 1
    assert stats.snapshot().requests[(name, "503")] == 1


def test_a_wait_longer_than_max_delay_fails_at_once_for_the_run_to_retry() -> None:
    with RateLimitedServer(limit=100) as server:
        made, name = factory(server, retry={"attempts": 5, "max_delay": 2})
        server.fail_next(429, "30")
        [error] = work(made, name, 1)
        assert isinstance(error, RateLimited) and error.retry_after == 30
        assert len(server.arrivals) == 1


def test_a_429_pauses_every_client_of_the_remote() -> None:
    with RateLimitedServer(limit=100) as server:
        made, name = factory(server, retry={"attempts": 1, "max_delay": 5})
        server.fail_next(429, "1")
        [error] = work(made, name, 1)
        assert isinstance(error, RateLimited)
        assert statuses(work(made, name, 1)) == [200]  # another run's client
    first, second = server.arrivals
    assert second - first >= 1.0


def test_metrics_expose_the_counts() -> None:
    stats.request("metrics-remote", 200)
    stats.retry("metrics-remote")
    stats.waited("metrics-remote", 1.5)
    registry = CollectorRegistry()
    registry.register(RemoteCollector())
    text = generate_latest(registry).decode()
    assert 'syncd_remote_requests_total{remote="metrics-remote",status="200"} 1.0' in text
    assert 'syncd_remote_retries_total{remote="metrics-remote"} 1.0' in text
    assert 'syncd_remote_rate_limit_wait_seconds_total{remote="metrics-remote"} 1.5' in text
