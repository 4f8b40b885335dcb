"""bench/api_load.py's outcome: both phases side by side, their ratios and the verdict
against issue 13's goals."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from api_phase import STATS, Phase
from daemonkit import say

# Issue 13's goals for the API during a 1M-row sync (bench/README.md).
MAX_P99_MS = 50.0  # p99 under this
MIN_RPS_RATIO = 0.8  # requests/s at least this share of idle


@dataclass
class Outcome:
    """Everything measured in one run of the script."""

    idle: Phase | None = None
    busy: Phase | None = None
    run: dict[str, Any] = field(default_factory=dict)  # the sync run, when it finished
    processed_during: tuple[int, int] | None = None  # items processed at load start, end
    sync_seconds: float | None = None
    overlap_seconds: float | None = None  # how much of the busy load ran during the sync
    daemon_exit: int | None = None
    notes: list[str] = field(default_factory=list)
    failure: str = ""

    def note(self, text: str) -> None:
        self.notes.append(text)
        say(f"  NOTE: {text}")


def as_int(value: object) -> int:
    """A counter from the API, 0 when missing."""
    return value if isinstance(value, int) else 0


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    """Format a figure, or '-' when there is none."""
    return "-" if value is None else f"{value:{spec}}{suffix}"


def ratio(a: float | None, b: float | None) -> str:
    """a / b as ``1.23x``, or '-'."""
    return "-" if a is None or not b else f"{a / b:.2f}x"


def cpu_pct(seconds: float | None, wall: float) -> str:
    """CPU seconds over a wall time, as percent of one CPU."""
    return "-" if seconds is None or not wall else f"{100 * seconds / wall:.0f}%"


def print_table(out: Outcome, args: argparse.Namespace) -> None:
    """Both phases side by side, then their ratios."""
    idle, busy = out.idle, out.busy
    if idle is None and busy is None:
        return
    head = (
        "phase",
        "requests",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "errors",
        "daemon CPU",
        "client CPU",
    )
    rows: list[tuple[str, ...]] = [head]
    for ph in (idle, busy):
        if ph is None:
            continue
        rows.append(
            (
                ph.name,
                f"{ph.requests:,}",
                f"{ph.rps:,.0f}",
                fmt(ph.percentile(50), ".1f"),
                fmt(ph.percentile(95), ".1f"),
                fmt(ph.percentile(99), ".1f"),
                fmt(max(ph.latencies_ms, default=None), ".1f"),
                f"{ph.errors:,}",
                cpu_pct(ph.daemon_cpu_s, ph.seconds),
                cpu_pct(ph.client_cpu_s, ph.seconds),
            )
        )
    if idle and busy:
        rows.append(
            (
                "during/idle",
                ratio(busy.requests, idle.requests),
                ratio(busy.rps, idle.rps),
                *(ratio(busy.percentile(p), idle.percentile(p)) for p in (50, 95, 99)),
                ratio(max(busy.latencies_ms, default=None), max(idle.latencies_ms, default=None)),
                "",
                "",
                "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    print(
        f"\nGET {STATS}: {args.clients} clients, {args.seconds:g} s a phase, "
        f"sync of {args.rows:,} CSV rows (CPU: percent of one core, over the phase)"
    )
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        print("  " + "  ".join(cells).rstrip())
    for ph in (idle, busy):
        if ph and ph.error_samples:
            print(f"  {ph.name} errors, e.g.: {'; '.join(ph.error_samples)}")
    if out.processed_during and busy:
        a, b = out.processed_during
        print(
            f"\nsync: {b - a:,} items processed during the {busy.seconds:.1f} s load "
            f"({(b - a) / busy.seconds:,.0f} items/s, from {a:,} to {b:,})"
        )
    if out.run:
        took = f" in {out.sync_seconds:.1f} s" if out.sync_seconds is not None else ""
        print(
            f"sync run {out.run.get('syncRunId')}: {out.run.get('status')}{took}, "
            f"{as_int(out.run.get('itemsInserted')):,} inserted, "
            f"{as_int(out.run.get('itemsFailed')):,} failed"
        )


def verdict(out: Outcome) -> list[dict[str, str]]:
    """Check the busy phase against the targets; one entry per check."""
    checks: list[dict[str, str]] = []

    def check(name: str, passed: bool | None, detail: str) -> None:
        result = {True: "PASS", False: "FAIL", None: "N/A"}[passed]
        checks.append({"check": name, "result": result, "detail": detail})

    idle, busy = out.idle, out.busy
    p99 = busy.percentile(99) if busy else None
    check(
        f"p99 during the sync < {MAX_P99_MS:.0f} ms",
        None if p99 is None else p99 < MAX_P99_MS,
        "not measured" if p99 is None else f"{p99:.1f} ms",
    )
    if idle is None or busy is None or not idle.rps:
        check(f"throughput during the sync >= {MIN_RPS_RATIO:.0%} of idle", None, "not measured")
    else:
        r = busy.rps / idle.rps
        check(
            f"throughput during the sync >= {MIN_RPS_RATIO:.0%} of idle",
            r >= MIN_RPS_RATIO,
            f"{busy.rps:,.0f} vs {idle.rps:,.0f} req/s = {r:.0%}",
        )
    if busy and out.overlap_seconds is not None and out.overlap_seconds < 0.95 * busy.seconds:
        for c in checks:
            c["detail"] += f" (sync overlapped only {out.overlap_seconds:.1f} s of the load)"
    if busy and busy.errors:
        check("no failed requests during the sync", False, f"{busy.errors:,} errors")
    return checks
