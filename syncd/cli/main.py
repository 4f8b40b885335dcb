"""The ``syncd`` command line. Imports stay light: heavy modules load per command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from syncd import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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
    commands.add_parser("check-config", help="validate the config and list jobs and triggers")
    commands.add_parser("plugins", help="list registered sources and targets")
    for name in ("run", "sync", "check-config", "plugins"):
        commands.choices[name].add_argument("--config", metavar="PATH",
                                            default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from syncd.config import config_path
    from syncd.errors import UserError

    path = config_path(args.config)
    try:
        return _dispatch(args, path)
    except UserError as exc:
        print(f"syncd: error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _dispatch(args: argparse.Namespace, path: Path) -> int:
    from syncd import bootstrap, logs

    if args.command == "plugins":
        from syncd.cli.commands import show_plugins

        return show_plugins()
    setup = bootstrap.load(path)
    logs.configure(setup.config.daemon.log_format)
    if args.command == "check-config":
        from syncd.cli.commands import check_config

        return check_config(setup)
    if args.command == "run":
        from syncd import daemon

        return daemon.run(path)
    from syncd.cli.commands import sync

    return sync(setup, args.job, args.file, args.dry_run, args.all)


if __name__ == "__main__":
    sys.exit(main())
