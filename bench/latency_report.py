"""bench/latency.py's figures and checks: what one drop measured, the store after the
burst, percentiles per series, the printed table and the verdict."""

from __future__ import annotations

import argparse
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemonkit import say

TARGET_P50_MS = 300.0


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


SERIES = ("isolated", "back-to-back")


@dataclass
class Drop:
    """One measured drop: latency and where the time went (ms)."""

    series: str
    name: str
    run_id: int
    latency_ms: float
    detect_ms: float | None  # rename -> run created (event, stability check, sha256)
    run_ms: float | None  # run created -> completed
    notify_ms: float | None  # completed -> run_finished event received


@dataclass
class Outcome:
    """Everything measured."""

    warmup_ms: float | None = None
    drops: list[Drop] = field(default_factory=list)
    burst_seconds: float | None = None
    burst_renames_ms: float | None = None
    burst_events: int = 0
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failure: str = ""
    daemon_exit: int | None = None

    def check(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append((name, passed, detail))
        say(f"  {'ok' if passed else 'FAILED'}: {name}: {detail}")


def verify(db_path: Path, job: str, inbox: Path, args: argparse.Namespace, out: Outcome) -> None:
    """Each burst file ingested exactly once: runs, ingested_files and content_index."""
    paths = {str(inbox / f"burst-{i:05d}.csv") for i in range(args.burst)}
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        runs = db.execute(
            "SELECT source_identifier, status, trigger, items_inserted, items_skipped "
            "FROM sync_runs WHERE job = ? AND source_identifier LIKE ?",
            (job, str(inbox / "burst-%")),
        ).fetchall()
        ingested = db.execute(
            "SELECT path FROM ingested_files WHERE job = ? AND path LIKE ?",
            (job, str(inbox / "burst-%")),
        ).fetchall()
        rows, distinct = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT external_id) FROM content_index "
            "WHERE external_id LIKE 'burst-%'"
        ).fetchone()
    finally:
        db.close()
    good = [r for r in runs if r[1:] == ("completed", "watch", args.burst_rows, 0)]
    per_file = {r[0] for r in good}
    out.check(
        "one completed watch run per file",
        len(runs) == len(good) == args.burst and per_file == paths,
        f"{len(runs):,} runs for burst files, {len(good):,} completed by watch with "
        f"{args.burst_rows} rows inserted, {len(per_file):,} distinct files of "
        f"{args.burst:,}",
    )
    ingested_paths = [r[0] for r in ingested]
    out.check(
        "each file once in ingested_files",
        len(ingested_paths) == args.burst and set(ingested_paths) == paths,
        f"{len(ingested_paths):,} rows, {len(set(ingested_paths)):,} distinct paths",
    )
    expected = args.burst * args.burst_rows
    out.check(
        "every row once in content_index",
        rows == distinct == expected,
        f"{rows:,} rows, {distinct:,} distinct ids, {expected:,} expected",
    )
    left = sorted(p.name for p in inbox.glob("burst-*.csv"))
    if left:
        out.notes.append(f"{len(left)} burst files still in the inbox, e.g. {left[0]}")


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else f"{value:{spec}}"


def series_figures(drops: list[Drop]) -> dict[str, Any]:
    """Percentiles of one series, and the p50 of each part of the latency."""
    latencies = [d.latency_ms for d in drops]

    def part(name: str) -> list[float]:
        return [v for d in drops if (v := getattr(d, name)) is not None]

    return {
        "drops": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "min_ms": min(latencies, default=None),
        "max_ms": max(latencies, default=None),
        "parts_p50_ms": {
            name: percentile(part(name), 50) for name in ("detect_ms", "run_ms", "notify_ms")
        },
    }


def report(out: Outcome, args: argparse.Namespace) -> dict[str, Any]:
    """Print the figures and the verdict; return them for --json."""
    series = {name: series_figures([d for d in out.drops if d.series == name]) for name in SERIES}
    per_s = out.burst_events / out.burst_seconds if out.burst_seconds else None
    figures: dict[str, Any] = {
        "rows_per_drop": args.rows,
        "gap_s": args.gap,
        "warmup_ms": out.warmup_ms,
        "series": series,
        "burst_files": args.burst,
        "rows_per_burst_file": args.burst_rows,
        "burst_seconds": out.burst_seconds,
        "burst_renames_ms": out.burst_renames_ms,
        "burst_files_per_s": per_s,
    }
    if out.drops:
        print(
            f"\ndrop -> completed, {args.rows:,}-row CSV files (rename into the inbox -> "
            f"run_finished event); warm-up drop {fmt(out.warmup_ms, '.0f')} ms, not counted"
        )
        print(
            "  series         drops   p50 ms   p95 ms   min ms   max ms   "
            "| p50 of: detect   run   notify"
        )
        for name, f in series.items():
            parts = f["parts_p50_ms"]
            print(
                f"  {name:<13} {f['drops']:>6} {fmt(f['p50_ms']):>8} {fmt(f['p95_ms']):>8} "
                f"{fmt(f['min_ms']):>8} {fmt(f['max_ms']):>8}   |       "
                f"{fmt(parts['detect_ms'], '.0f'):>6} {fmt(parts['run_ms'], '.0f'):>5} "
                f"{fmt(parts['notify_ms'], '.0f'):>8}"
            )
        print(
            "  detect: rename -> run created (inotify, stable-size wait, sha256); run: "
            "created -> completed;\n  notify: completed -> event received (wall clocks of "
            f"the run record). isolated: {args.gap:g} s between drops."
        )
    if out.burst_seconds is not None and per_s is not None:
        print(
            f"\nburst: {args.burst:,} files of {args.burst_rows} rows renamed into the inbox "
            f"at once ({fmt(out.burst_renames_ms)} ms of renames)"
        )
        print(
            f"  all {out.burst_events:,} runs finished after {out.burst_seconds:.2f} s: "
            f"{per_s:.1f} files/s, {per_s * args.burst_rows:,.0f} rows/s"
        )
    for name, passed, detail in out.checks:
        print(f"  {'PASS' if passed else 'FAIL'}  {name}: {detail}")
    for text in out.notes:
        print(f"note: {text}")
    if out.failure:
        print(f"FAILED: {out.failure}")
    print("\nverdict:")
    verdicts = []
    for name, f in series.items():
        p50 = f["p50_ms"]
        result = {True: "PASS", False: "FAIL", None: "N/A"}[
            None if p50 is None else p50 < TARGET_P50_MS
        ]
        check = f"drop -> completed p50 under {TARGET_P50_MS:.0f} ms ({name} drops)"
        detail = "not measured" if p50 is None else f"p50 {p50:.1f} ms"
        verdicts.append({"check": check, "result": result, "detail": detail})
        print(f"  {result:<4}  {check}: {detail}")
    figures["verdict"] = verdicts
    figures["checks"] = [{"check": n, "passed": p, "detail": d} for n, p, d in out.checks]
    return figures
