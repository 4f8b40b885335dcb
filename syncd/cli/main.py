"""The ``syncd`` command line. Imports stay light: heavy modules load per command."""

from __future__ import annotations

import argparse
import gc
import os
import select
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from syncd import __version__
from syncd.cli.exits import EXIT_INTERRUPTED, EXIT_PIPE, EXIT_USAGE
from syncd.cli.ledger import LEDGER_COMMANDS, add_ledger_commands
from syncd.terms import RUN_STATUSES

CLIENT_COMMANDS = ("runs", "show", "trigger", "retry", "cancel", "resume")
CLIENT_EXIT_CODES = """\
talks to the running daemon at [api] listen, with the token of [api] token_file.

exit codes:
  0    done (trigger --wait: the run completed)
  1    the run failed or was cancelled; no such run or job (404); not possible now (409)
  2    bad input (400, 413) or a bad config
  3    the daemon is not running, not reachable or not ready (503)
  4    the token is missing, wrong (401) or unreadable
  130  interrupted while waiting; the run goes on in the daemon
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncd", description="Keep data in sync between "
                                     "sources and targets.")
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    parser.add_argument("--config", metavar="PATH", help="config file (default: $SYNCD_CONFIG, "
                        "else /etc/syncd/syncd.toml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="run the daemon in the foreground")
    sync = commands.add_parser("sync", help="run a job once in the foreground")
    sync.add_argument("job", nargs="?", help="job name from the config")
    sync.add_argument("--file", metavar="PATH", help="read this file instead of the job's own")
    sync.add_argument("--dry-run", action="store_true", help="count what would change, "
                      "write nothing")
    sync.add_argument("--all", action="store_true", help="run every job, in dependency order")
    sync.add_argument("--allow-mass-missing", action="store_true",
                      help="confirm a full sync that removes more than the job's max_missing")
    commands.add_parser("check-config", help="validate the config and list jobs and triggers")
    commands.add_parser("plugins", help="list registered sources and targets")
    cleanup = commands.add_parser(
        "cleanup", help="remove old runs, old ingested-file records and long-unavailable "
        "content now (keep_runs_days, keep_content_days)")
    cleanup.add_argument("--dry-run", action="store_true", help="say what would be removed, "
                         "remove nothing")
    for name in ("run", "sync", "check-config", "plugins", "cleanup"):
        commands.choices[name].add_argument("--config", metavar="PATH",
                                            default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    add_ledger_commands(commands, _positive)
    _add_client_commands(commands)
    return parser


def _add_client_commands(commands: argparse._SubParsersAction) -> None:
    """The clients of a running daemon's control API (``syncd.cli.client``)."""

    def client(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                                  epilog=CLIENT_EXIT_CODES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)
        return sub

    runs = client("runs", "list the daemon's runs, newest first")
    runs.add_argument("--status", choices=RUN_STATUSES, help="only runs in this status")
    runs.add_argument("--job", metavar="JOB", help="only runs of this job")
    runs.add_argument("--limit", metavar="N", type=_positive, default=20,
                      help="at most N runs (default: 20)")
    runs.add_argument("--before", metavar="RUN", type=_positive,
                      help="only runs older than this one (the next page)")
    client("show", "show one run of the daemon, with its errors").add_argument(
        "run", metavar="RUN", type=_positive, help="run id")
    trigger = client("trigger", "ask the daemon to run a job now")
    trigger.add_argument("job", metavar="JOB", help="job name from the daemon's config")
    trigger.add_argument("--file", metavar="PATH", help="read this file (or URL) instead of "
                         "the job's own; made absolute for the daemon")
    trigger.add_argument("--dry-run", action="store_true", help="count what would change, "
                         "write nothing")
    trigger.add_argument("--wait", action="store_true", help="follow the run with a progress "
                         "bar until it ends; exit 0 only if it completed")
    client("retry", "retry a failed run from its checkpoint").add_argument(
        "run", metavar="RUN", type=_positive, help="run id")
    client("cancel", "cancel a pending or running run").add_argument(
        "run", metavar="RUN", type=_positive, help="run id")
    client("resume", "resume every pending or interrupted run")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    # Start-up makes ~85,000 objects (modules, classes, pydantic schemas) that live as
    # long as the process: the cyclic GC's passes over them while they are made free
    # next to nothing (800 objects) and cost 0.07 s of a 0.42 s ``syncd sync`` (measured).
    # So it is off while a command is set up, and on, without those objects, to run it.
    gc.disable()
    try:
        return _main(argv)
    except BrokenPipeError:
        if not _reader_left():  # a socket's, say: not ours to hide
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor at exit
        return EXIT_PIPE
    finally:
        gc.enable()


def _reader_left() -> bool:
    """Standard output is a pipe its reader closed, as in ``syncd runs | head``."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # no file descriptor behind it
        return False


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from syncd.config import config_path
    from syncd.errors import UserError

    path = config_path(args.config)
    try:
        command = _set_up(args, path)
        _started()
        return command()
    except UserError as exc:
        print(f"syncd: error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _started() -> None:
    """Set-up is over: what it made is kept out of every later collection (never
    scanned again, as after a fork), and collection resumes."""
    gc.freeze()
    gc.enable()


def _set_up(args: argparse.Namespace, path: Path) -> Callable[[], int]:
    """Import and load what the command needs; answer the command, ready to run."""
    if args.command in CLIENT_COMMANDS:  # only the config: no plugins, no store
        from syncd.cli.client import run_command

        return partial(run_command, args, path)
    from syncd import bootstrap, logs

    if args.command == "plugins":
        from syncd.cli.commands import show_plugins

        return show_plugins
    setup = bootstrap.load(path)
    logs.configure(setup.config.daemon.log_format)
    if args.command == "check-config":
        from syncd.cli.commands import check_config

        return partial(check_config, setup)
    if args.command == "run":
        from syncd import daemon

        return partial(daemon.run, setup)
    if args.command in LEDGER_COMMANDS:
        from syncd.cli.ledger import run_ledger_command

        return partial(run_ledger_command, args, setup)
    if args.command == "cleanup":
        from syncd.cli.commands import cleanup

        return partial(cleanup, setup, args.dry_run)
    from syncd.cli.commands import sync

    return partial(sync, setup, args.job, args.file, args.dry_run, args.all,
                   allow_mass_missing=args.allow_mass_missing)


if __name__ == "__main__":
    sys.exit(main())
