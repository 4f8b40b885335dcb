"""What bench/ingest.py prints: the contenders' results, the per-N table and the verdict."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from ingest_run import Proc, say

TABLE = "content_index"

# Targets of issue 13 (see README.md).
MAX_FIRST_VS_FLOOR = 1.5
MAX_FIRST_VS_FLOOR_SMALL = 1.3  # at 100k rows or fewer, start-up included
MAX_FIRST_VS_BULK = 1.5  # vs sqlite3 CLI .import, PostgreSQL COPY, MariaDB LOAD DATA
MAX_RESYNC_VS_FIRST = 0.3
MAX_CHANGED_VS_FIRST = 0.4
MAX_RSS_MB_AT_1M = 150.0  # at 1M rows and above
# "Flat": syncd's peak RSS at the largest N is at most this times that at the smallest N.
MAX_RSS_GROWTH = 1.25

CONTENDERS = (
    "floor",
    "sqlite3-cli",
    "sqlite-utils-insert",
    "sqlite-utils-upsert",
    "syncd",
    "pg-copy",
    "pg-copy-table",
    "syncd-pg",
    "mariadb-load",
    "mariadb-load-table",
    "syncd-mariadb",
)
LABELS = {
    "floor": "floor",
    "sqlite3-cli": "sqlite3 CLI .import",
    "sqlite-utils-insert": "sqlite-utils insert",
    "sqlite-utils-upsert": "sqlite-utils upsert",
    "syncd": "syncd",
    "pg-copy": "PostgreSQL COPY",
    "pg-copy-table": "PostgreSQL COPY, syncd's table",
    "syncd-pg": "syncd on PostgreSQL",
    "mariadb-load": "MariaDB LOAD DATA",
    "mariadb-load-table": "MariaDB LOAD DATA, syncd's table",
    "syncd-mariadb": "syncd on MariaDB",
}
# Each contender's ratio in the "x bulk" column is to the bulk path of its own engine.
BULK_OF = {name: "sqlite3-cli" for name in CONTENDERS[:5]}
BULK_OF |= {"pg-copy": "pg-copy", "pg-copy-table": "pg-copy", "syncd-pg": "pg-copy"}
BULK_OF |= {name: "mariadb-load" for name in ("mariadb-load", "mariadb-load-table",
                                              "syncd-mariadb")}
# ... and in "x table" to the same bulk path into syncd's own table (bench/ingest_table.py)
TABLE_OF = {"pg-copy-table": "pg-copy-table", "syncd-pg": "pg-copy-table"}
TABLE_OF |= {"mariadb-load-table": "mariadb-load-table", "syncd-mariadb": "mariadb-load-table"}
SYNCD_ON = {"syncd": None, "syncd-pg": "pg", "syncd-mariadb": "mariadb"}


PHASES = ("first", "resync", "changed")
PHASE_LABEL = {"first": "first sync", "resync": "unchanged re-sync", "changed": "1 % re-sync"}
NA = "\u2014"  # a phase or ratio that has no meaning for this contender


@dataclass
class Result:
    """All repeats of one contender at one N."""

    name: str
    rows: int
    first: list[Proc] = field(default_factory=list)
    resync: list[Proc] = field(default_factory=list)
    changed: list[Proc] = field(default_factory=list)
    phases: tuple[str, ...] = PHASES  # the phases that mean something for this contender
    skipped: str = ""  # why it was not run (server down, too slow at this N)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        runs = self.first + self.resync + self.changed
        done = all(len(getattr(self, ph)) == len(self.first) for ph in self.phases)
        return bool(self.first) and all(p.ok for p in runs) and done

    def seconds(self, phase: str) -> float | None:
        runs = getattr(self, phase)
        return statistics.median(p.seconds for p in runs) if self.ok and runs else None

    def rss_mb(self, *phases: str) -> float | None:
        runs = [p for ph in phases for p in getattr(self, ph)]
        return max(p.rss_kib for p in runs) / 1024 if self.ok and runs else None

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            say(f"  WARNING: {LABELS[self.name]} at {self.rows:,}: {text}")


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    """Format a figure, or '-' when there is none."""
    return "-" if value is None else f"{value:{spec}}{suffix}"


def ratio(value: float | None, ref: float | None, spec: str = ".2f", suffix: str = "") -> str:
    """value / ref formatted, or '-' when either is missing."""
    return fmt(value / ref if value is not None and ref else None, spec, suffix)


def print_table(n: int, results: list[Result], inherited_mb: float) -> None:
    """The per-N table."""
    done = {r.name: r for r in results if r.ok}

    def first_of(name: str) -> float | None:
        return done[name].seconds("first") if name in done else None

    head = (
        "contender",
        "first s",
        "rows/s",
        "x floor",
        "x bulk",
        "x table",
        "re-sync s",
        "re/first",
        "1% s",
        "1%/first",
        "RSS first MB",
        "RSS re MB",
        "notes",
    )
    lines = []
    for r in results:
        if r.skipped or not r.ok:
            failed = next((p for p in r.first + r.resync + r.changed if not p.ok), None)
            reason = r.skipped or (failed.error if failed else "not run")
            state = "skipped" if r.skipped else "FAILED"
            lines.append((LABELS[r.name], state, *[""] * 10, reason))
            continue
        first = r.seconds("first")
        on_sqlite = BULK_OF[r.name] == "sqlite3-cli"

        def phase(ph: str, r: Result = r, first: float | None = first) -> tuple[str, str]:
            if ph not in r.phases:
                return NA, NA
            return fmt(r.seconds(ph), ".2f"), ratio(r.seconds(ph), first)

        lines.append(
            (
                LABELS[r.name],
                fmt(first, ".2f"),
                ratio(n, first, ",.0f"),
                ratio(first, first_of("floor"), suffix="x") if on_sqlite else NA,
                ratio(first, first_of(BULK_OF[r.name]), suffix="x"),
                ratio(first, first_of(TABLE_OF[r.name]), suffix="x") if r.name in TABLE_OF
                else NA,
                *phase("resync"),
                *phase("changed"),
                fmt(r.rss_mb("first"), ".0f"),
                fmt(r.rss_mb("resync", "changed"), ".0f") if len(r.phases) > 1 else NA,
                "; ".join(r.notes),
            )
        )
    widths = [max(len(row[i]) for row in (head, *lines)) for i in range(len(head) - 1)]
    print(
        f"\n{n:,} rows (median of {max((len(r.first) for r in results), default=0)}; "
        f"x bulk = first sync / its engine's bulk path; x table = the same into syncd's "
        f"table, with the rows syncd stores; 1% = re-sync with 1 % of titles "
        f"changed; peak RSS = max over repeats, never below the {inherited_mb:.0f} MB "
        "inherited at spawn)"
    )
    for row in (head, *lines):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:-1], widths[1:], strict=True)
        ]
        print("  " + "  ".join(cells) + (f"  {row[-1]}" if row[-1] else ""))


def verdict(by_n: dict[int, list[Result]]) -> list[dict[str, object]]:
    """Check syncd against the targets of issue 13; returns one entry per check."""
    checks: list[dict[str, object]] = []

    def check(name: str, passed: bool | None, detail: str) -> None:
        checks.append(
            {
                "check": name,
                "result": {True: "PASS", False: "FAIL", None: "N/A"}[passed],
                "detail": detail,
            }
        )

    def get(n: int, name: str) -> Result | None:
        return next((r for r in by_n[n] if r.name == name and r.ok), None)

    def compare(name: str, value: float | None, ref: float | None, limit: float) -> None:
        if value is None or not ref:
            check(
                name, None, "not measured (syncd or its baseline failed, was skipped or left out)"
            )
        else:
            ratio = value / ref
            passed = ratio < limit if limit == 1.0 else ratio <= limit
            check(name, passed, f"{value:.2f} s vs {ref:.2f} s = {ratio:.2f}x")

    def seconds(n: int, name: str, phase: str = "first") -> float | None:
        r = get(n, name)
        return r.seconds(phase) if r else None

    selected = {r.name for rs in by_n.values() for r in rs}
    for n in by_n:
        s_first = seconds(n, "syncd")
        if "syncd" in selected:
            limit = MAX_FIRST_VS_FLOOR_SMALL if n <= 100_000 else MAX_FIRST_VS_FLOOR
            for what, base, lim in (
                (f"<= {limit}x floor", "floor", limit),
                (f"<= {MAX_FIRST_VS_BULK}x sqlite3 CLI .import", "sqlite3-cli", MAX_FIRST_VS_BULK),
                ("faster than sqlite-utils insert", "sqlite-utils-insert", 1.0),
            ):
                compare(f"first sync {what} ({n:,} rows)", s_first, seconds(n, base), lim)
            compare(
                f"unchanged re-sync <= {MAX_RESYNC_VS_FIRST}x its first sync ({n:,} rows)",
                seconds(n, "syncd", "resync"),
                s_first,
                MAX_RESYNC_VS_FIRST,
            )
            compare(
                f"1 % re-sync <= {MAX_CHANGED_VS_FIRST}x its first sync ({n:,} rows)",
                seconds(n, "syncd", "changed"),
                s_first,
                MAX_CHANGED_VS_FIRST,
            )
        for name in ("syncd-pg", "syncd-mariadb"):
            base = BULK_OF[name]
            if name in selected:
                compare(
                    f"{LABELS[name]}: first sync <= {MAX_FIRST_VS_BULK}x {LABELS[base]} "
                    f"({n:,} rows)",
                    seconds(n, name),
                    seconds(n, base),
                    MAX_FIRST_VS_BULK,
                )
                compare(  # not one of issue 13's targets: where the rest of the gap lies
                    f"{LABELS[name]}: first sync <= {MAX_FIRST_VS_BULK}x {LABELS[TABLE_OF[name]]}"
                    f" ({n:,} rows; for reference)",
                    seconds(n, name),
                    seconds(n, TABLE_OF[name]),
                    MAX_FIRST_VS_BULK,
                )

    def peak(n: int) -> float | None:
        s = get(n, "syncd") if n in by_n else None
        return s.rss_mb(*PHASES) if s else None

    if "syncd" not in selected:
        return checks
    for n in [n for n in by_n if n >= 1_000_000] or [1_000_000]:
        big = peak(n)
        check(
            f"peak RSS <= {MAX_RSS_MB_AT_1M:.0f} MB at {n:,} rows",
            None if big is None else big <= MAX_RSS_MB_AT_1M,
            "not measured (needs --rows ... 1000000)" if big is None else f"{big:.0f} MB",
        )
    lo_n, hi_n = min(by_n), max(by_n)
    lo, hi = peak(lo_n), peak(hi_n)
    if lo_n == hi_n:
        check(f"peak RSS flat (<= {MAX_RSS_GROWTH}x)", None, "needs two row counts (--rows)")
    elif lo is None or hi is None:
        check(
            f"peak RSS flat (<= {MAX_RSS_GROWTH}x from {lo_n:,} to {hi_n:,} rows)",
            None,
            "syncd not measured at both row counts",
        )
    else:
        check(
            f"peak RSS flat (<= {MAX_RSS_GROWTH}x from {lo_n:,} to {hi_n:,} rows)",
            hi <= MAX_RSS_GROWTH * lo,
            f"{lo:.0f} MB -> {hi:.0f} MB = {hi / lo:.2f}x",
        )
    return checks
