"""Commands that talk to a running daemon through its control API (SPEC §4, §5).

``syncd runs``, ``show``, ``trigger``, ``retry``, ``cancel`` and ``resume`` use
aiohttp's client (``syncd.cli.api_client``) over TCP or a unix socket, and read the
config for ``[api] listen`` and ``[api] token_file`` and nothing else. ``main``
imports this module only for these commands, so the others never load aiohttp.

Every failure is one line (plus a hint) and an exit code (``syncd.cli.exits``):

    0    done; for ``trigger --wait``, the run completed
    1    the run failed or was cancelled; the daemon answered 404 (no such run or
         job), 409 (not possible in the run's state) or something unexpected
    2    bad input: the daemon answered 400 or 413, or the config is unusable
    3    the daemon is not running, not reachable, or not ready (503)
    4    authentication: the daemon answered 401 or 403, or the token is unreadable
    130  interrupted while waiting; the run goes on in the daemon
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from syncd import __version__
from syncd.cli.api_client import Address, ApiClient, ClientError, read_token
from syncd.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from syncd.cli.follow import wait_for
from syncd.cli.views import error_lines, runs_table, show_fields, summary


def run_command(args: argparse.Namespace, path: Path) -> int:
    """Run one client command; every failure is one line and a documented exit code."""
    from syncd.config import load_config

    config = load_config(path)
    try:
        address = Address.parse(config.api.listen)
        token = read_token(config.api.token_file)
        return asyncio.run(_run(COMMANDS[args.command], args, address, token))
    except ClientError as exc:
        print(f"syncd: error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except (KeyError, TypeError) as exc:
        print(f"syncd: error: the daemon's answer lacks what this syncd {__version__} "
              f"expects ({type(exc).__name__}: {exc})", file=sys.stderr)
        return EXIT_FAILED


async def _run(command: Command, args: argparse.Namespace, address: Address,
               token: str) -> int:
    async with ApiClient(address, token) as client:
        return await command(client, args)


async def cmd_runs(client: ApiClient, args: argparse.Namespace) -> int:
    query = {"status": args.status, "job": args.job, "limit": args.limit,
             "before": args.before}
    data = await client.call("GET", "/v1/sync/runs",
                             params={k: v for k, v in query.items() if v is not None})
    runs = data["runs"]
    if not runs:
        print("no runs")
        return EXIT_OK
    print(runs_table(runs))
    if data.get("nextBefore"):
        print(f"(older runs: syncd runs --before {data['nextBefore']})", file=sys.stderr)
    return EXIT_OK


async def cmd_show(client: ApiClient, args: argparse.Namespace) -> int:
    run = await client.run(args.run)
    for label, value in show_fields(run):
        print(f"{label:<11} {value}")
    errors = run.get("errors") or []
    total = run.get("errorsTotal", len(errors))
    if total:
        print(f"errors      {total}")
        for line in error_lines(run, retryable=True):
            print(line)
    for number, path in enumerate(run.get("artifacts") or []):
        print(f"{'artifacts' if number == 0 else '':<11} {path}")
    return EXIT_OK


async def cmd_trigger(client: ApiClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"job": args.job}
    if args.file:
        # the daemon has another working directory; a URL goes as it is
        body["sourceIdentifier"] = args.file if "://" in args.file else os.path.abspath(
            os.path.expanduser(args.file))
    if args.dry_run:
        body["dryRun"] = True
    data = await client.call("POST", "/v1/sync/trigger", body)
    run_id = data["syncRunId"]
    print(f"run {run_id} started ({data.get('job', args.job)}"
          f"{', dry run' if args.dry_run else ''})", flush=True)
    return await _wait(client, run_id) if args.wait else EXIT_OK


async def _wait(client: ApiClient, run_id: int) -> int:
    """Follow the run with a progress bar (on a terminal); exit 0 only if it completed."""
    from syncd.cli.progress import ProgressBars

    bars = ProgressBars()

    def on_event(kind: str, data: dict[str, Any]) -> None:
        position = data.get("position")
        bars(kind, {"run_id": run_id, "job": data.get("job", ""),
                    "processed": data.get("processed") or 0, "size": data.get("size"),
                    "position": position if isinstance(position, int) else 0})

    try:
        run = await wait_for(client, run_id, on_event)
    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels this, the main task
        print(f"\nstopped waiting; run {run_id} goes on in the daemon "
              f"(see it with: syncd show {run_id})", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for bar in bars.bars.values():
            bar.close()
    print(summary(run))
    for line in error_lines(run):
        print(line)
    return EXIT_OK if run["status"] == "completed" else EXIT_FAILED


async def cmd_retry(client: ApiClient, args: argparse.Namespace) -> int:
    data = await client.call("POST", f"/v1/sync/{args.run}/retry")
    print(f"run {data['syncRunId']} started (retry of run {data.get('parentRun', args.run)})")
    return EXIT_OK


async def cmd_cancel(client: ApiClient, args: argparse.Namespace) -> int:
    data = await client.call("POST", f"/v1/sync/{args.run}/cancel")
    if data.get("status") == "cancelling":
        print(f"run {data['syncRunId']} cancelling: it stops after its current batch")
    else:
        print(f"run {data['syncRunId']} {data.get('status', 'cancelled')}")
    return EXIT_OK


async def cmd_resume(client: ApiClient, args: argparse.Namespace) -> int:
    resumed = (await client.call("POST", "/v1/sync/resume"))["resumed"]
    if resumed:
        print(f"resumed run{'s' if len(resumed) > 1 else ''} "
              f"{', '.join(str(r) for r in resumed)}")
    else:
        print("nothing to resume")
    return EXIT_OK


Command = Callable[[ApiClient, argparse.Namespace], Awaitable[int]]
COMMANDS: dict[str, Command] = {
    "runs": cmd_runs, "show": cmd_show, "trigger": cmd_trigger, "retry": cmd_retry,
    "cancel": cmd_cancel, "resume": cmd_resume,
}
