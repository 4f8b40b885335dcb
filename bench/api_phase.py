"""One load phase of bench/api_load.py: concurrent clients sending the same GET back to
back for a fixed time; their latencies, errors and CPU seconds."""

from __future__ import annotations

import asyncio
import math
import resource
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from daemonkit import Daemon

STATS = "/v1/sync/stats"  # the endpoint both phases load


@dataclass
class Phase:
    """One load phase: per-request latencies of the successful requests, and the errors."""

    name: str
    clients: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0  # from the start of the load until the last request came back
    started_at: float = 0.0  # POSIX time the load started
    daemon_cpu_s: float | None = None
    client_cpu_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + self.errors

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile of the latencies, in ms."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5 and text not in self.error_samples:
            self.error_samples.append(text)

    def figures(self) -> dict[str, Any]:
        """The phase as a JSON-friendly dict."""
        return {
            "phase": self.name,
            "clients": self.clients,
            "seconds": self.seconds,
            "requests": self.requests,
            "ok": len(self.latencies_ms),
            "errors": self.errors,
            "error_samples": self.error_samples,
            "rps": self.rps,
            "p50_ms": self.percentile(50),
            "p95_ms": self.percentile(95),
            "p99_ms": self.percentile(99),
            "max_ms": max(self.latencies_ms, default=None),
            "mean_ms": sum(self.latencies_ms) / len(self.latencies_ms)
            if self.latencies_ms
            else None,
            "daemon_cpu_s": self.daemon_cpu_s,
            "client_cpu_s": self.client_cpu_s,
        }


def own_cpu_seconds() -> float:
    """User + system CPU seconds of this process (the load generator)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def load(
    session: aiohttp.ClientSession,
    url: str,
    name: str,
    clients: int,
    seconds: float,
    daemon: Daemon,
) -> Phase:
    """``clients`` workers, each sending GET url back to back until ``seconds`` have passed.

    A request started before the deadline is waited for and counted; the phase lasts until
    the last one came back.
    """
    phase = Phase(name, clients)

    async def worker(deadline: float) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                async with session.get(url) as resp:
                    await resp.read()
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                phase.error(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = (time.perf_counter() - t0) * 1000
            if status == 200:
                phase.latencies_ms.append(elapsed)
            else:
                phase.error(f"HTTP {status}")

    cpu0, daemon0 = own_cpu_seconds(), daemon.cpu_seconds()
    phase.started_at = time.time()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(t0 + seconds) for _ in range(clients)))
    phase.seconds = time.perf_counter() - t0
    phase.client_cpu_s = own_cpu_seconds() - cpu0
    daemon1 = daemon.cpu_seconds()
    if daemon0 is not None and daemon1 is not None:
        phase.daemon_cpu_s = daemon1 - daemon0
    return phase
