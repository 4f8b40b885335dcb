"""``syncd idmap``, ``conflicts``, ``resolve`` and ``check``: the ledger of export jobs.

These open the config and the store themselves, as ``syncd sync`` does, rather than
asking a running daemon: they are what a person reaches for when an export goes
wrong, often with the daemon stopped or failing, and none of them needs the
daemon's state. The store is safe to share (SQLite in WAL mode waits its turn, the
servers lock rows), and ``resolve`` is one transaction. The control API offers the
same (``GET /v1/jobs/{name}/idmap`` …) for remote callers. Like ``syncd sync``,
``check`` reads secrets itself: run it where the daemon's credentials are readable
(e.g. ``systemd-run --pipe -p LoadCredential=… syncd check JOB``).

Exit codes: 0 done (``check``: both sides answered); 1 a side did not answer, no such
conflict, or already resolved; 2 bad input or config.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from syncd.cli.exits import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from syncd.bootstrap import Setup

LEDGER_COMMANDS = ("idmap", "conflicts", "resolve", "check")
STATES = ("pending", "synced", "failed", "deferred", "deleted")  # SPEC §6 id_map.state
EXITS = """\
reads the config and the store itself (no daemon needed).

exit codes:
  0    done (check: the source and the target both answered)
  1    check: a side did not answer; resolve: no such conflict, or already resolved
  2    bad input or a bad config
"""


def add_ledger_commands(commands: argparse._SubParsersAction, positive: Any) -> None:
    """The parsers; ``positive`` parses a positive whole number."""

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                                  epilog=EXITS,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)
        sub.add_argument("--json", action="store_true", help="print the API's JSON instead")
        return sub

    idmap = command("idmap", "show an export job's id map: local key, remote id, state, "
                    "attempts, last error and whether a person is needed")
    idmap.add_argument("job", metavar="JOB", help="job name from the config")
    idmap.add_argument("--state", choices=STATES, help="only records in this state")
    idmap.add_argument("--limit", metavar="N", type=positive, default=50,
                       help="at most N records, newest first (default: 50)")
    idmap.add_argument("--before", metavar="ID", type=positive,
                       help="only rows older than this one (the next page)")
    conflicts = command("conflicts", "list records changed on both sides, waiting for "
                        "a person (open ones unless --all)")
    conflicts.add_argument("--job", metavar="JOB", help="only conflicts of this job")
    conflicts.add_argument("--all", action="store_true", help="resolved ones too")
    conflicts.add_argument("--limit", metavar="N", type=positive, default=50,
                           help="at most N conflicts, newest first (default: 50)")
    resolve = command("resolve", "resolve a conflict: the next run overwrites the remote "
                      "(--keep local) or leaves both as they are (--keep remote)")
    resolve.add_argument("conflict", metavar="ID", type=positive, help="conflict id")
    resolve.add_argument("--keep", choices=("local", "remote"), required=True,
                         help="which side's version wins")
    check = command("check", "test that a job's source and target can be reached and "
                    "authenticated, touching no data")
    check.add_argument("job", metavar="JOB", help="job name from the config")
    check.add_argument("--file", metavar="PATH", help="check this file instead of the "
                       "job's own")


def run_ledger_command(args: argparse.Namespace, setup: Setup) -> int:
    """Run one of ``LEDGER_COMMANDS`` against the config's store."""
    from syncd.errors import JobError

    job = getattr(args, "job", None)
    if job and job not in setup.config.jobs:
        raise JobError(f"unknown job {job!r}",
                       hint=f"jobs: {', '.join(setup.config.jobs) or 'none configured'}")
    store = setup.open_store()
    try:
        return COMMANDS[args.command](args, setup, store)
    finally:
        store.close()


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def cmd_idmap(args: argparse.Namespace, setup: Setup, store: Any) -> int:
    from syncd.cli.ledger_views import idmap_lines
    from syncd.engine.ledger import idmap_page

    page = idmap_page(args.job, args.state, args.limit, args.before)
    if args.json:
        _print_json(page)
        return EXIT_OK
    for line in idmap_lines(page):
        print(line)
    if page["nextBefore"]:
        print(f"(older rows: syncd idmap {args.job} --before {page['nextBefore']})",
              file=sys.stderr)
    return EXIT_OK


def cmd_conflicts(args: argparse.Namespace, setup: Setup, store: Any) -> int:
    from syncd.cli.ledger_views import conflict_lines
    from syncd.engine.ledger import conflicts_page

    page = conflicts_page(None if args.all else "open", args.job, args.limit)
    if args.json:
        _print_json(page)
        return EXIT_OK
    if not page["conflicts"]:
        print("no open conflicts" if not args.all else "no conflicts")
    for conflict in page["conflicts"]:
        for line in conflict_lines(conflict):
            print(line)
    return EXIT_OK


def cmd_resolve(args: argparse.Namespace, setup: Setup, store: Any) -> int:
    from syncd.engine.ledger import resolve
    from syncd.store.conflicts import AlreadyResolved, UnknownConflict

    try:
        done = resolve(args.conflict, args.keep)
    except (UnknownConflict, AlreadyResolved) as exc:
        print(f"syncd: error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        _print_json(done)
        return EXIT_OK
    print(f"conflict {done['id']} resolved: kept {args.keep}; the next run of "
          f"{done['job']} {done['nextRun']}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace, setup: Setup, store: Any) -> int:
    import asyncio  # here, not at the top: `syncd --version` builds its parser from here

    from syncd.engine.check import check_job

    report = asyncio.run(check_job(setup.plans[args.job], store, setup.state_dir, args.file,
                                   http=setup.http()))
    if args.json:
        _print_json(report.json())
    else:
        for answer in (report.source, report.target):
            verdict = "ok" if answer.ok else "FAILED"
            kind = f" ({answer.error_type})" if answer.error_type else ""
            print(f"{answer.side} {answer.adapter}: {verdict}{kind}: {answer.message} "
                  f"[{answer.seconds:.1f}s]")
    return EXIT_OK if report.ok else EXIT_FAILED


COMMANDS = {"idmap": cmd_idmap, "conflicts": cmd_conflicts, "resolve": cmd_resolve,
            "check": cmd_check}
