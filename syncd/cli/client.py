"""Commands that talk to a running daemon through its control API (SPEC §4, §5).

``syncd runs``, ``show``, ``trigger``, ``retry``, ``cancel`` and ``resume`` use the
standard library only (``http.client``): they start fast, need no event loop, and
speak the same HTTP over a unix socket as over TCP. The config is read for
``[api] listen`` and ``[api] token_file`` and nothing else.

Every failure is one line (plus a hint) and an exit code:

    0    done; for ``trigger --wait``, the run completed
    1    the run failed or was cancelled; the daemon answered 404 (no such run or
         job), 409 (not possible in the run's state) or something unexpected
    2    bad input: the daemon answered 400 or 413, or the config is unusable
    3    the daemon is not running, not reachable, or not ready (503)
    4    authentication: the daemon answered 401 or 403, or the token is unreadable
    130  interrupted while waiting; the run goes on in the daemon

The errors raised here, under ``syncd.errors.UserError``:

    ClientError              one line, a hint and the exit code to leave with
    ├── DaemonUnreachable    nothing usable answers on the address (exit 3)
    └── ApiFailure           the daemon answered with an error envelope
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from syncd import __version__
from syncd.cli.main import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from syncd.config.secrets import Secret
from syncd.errors import UserError

EXIT_UNREACHABLE, EXIT_AUTH = 3, 4
TIMEOUT_S = 30.0
POLL_S = 2.0  # while following a run: how often its status is checked besides the events
RETRIES = 5  # while following a run: hang-ups in a row before giving up
FINISHED = frozenset({"completed", "failed", "cancelled"})
STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
_STATUS_EXIT = {400: EXIT_USAGE, 413: EXIT_USAGE, 401: EXIT_AUTH, 403: EXIT_AUTH,
                503: EXIT_UNREACHABLE}
Run = dict[str, Any]


class ClientError(UserError):
    """A failure of a client command, printed as one line; ``exit_code`` says which."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, hint: str = "") -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code


class DaemonUnreachable(ClientError):
    """Nothing usable answers on the address; ``closed``: it hung up on a request."""

    def __init__(self, message: str, hint: str = "", closed: bool = False) -> None:
        super().__init__(message, EXIT_UNREACHABLE, hint)
        self.closed = closed


class ApiFailure(ClientError):
    """The daemon answered ``{"success": false, "error": {code, message}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code = status, code
        hint = ""
        if status == 401:
            hint = ("the token is read from the file named by [api] token_file in the config "
                    "(--config or $SYNCD_CONFIG)")
        super().__init__(f"{message} ({code})", _STATUS_EXIT.get(status, EXIT_FAILED), hint)


# -- where the daemon listens ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    """A unix socket ``path``, or a TCP ``host`` and ``port``; ``label`` is for messages."""

    label: str
    host: str = ""
    port: int = 0
    path: str = ""

    @classmethod
    def parse(cls, listen: str | list[str]) -> Address:
        """``[api] listen``: ``host:port`` or ``unix:/path``, or a list (a socket preferred)."""
        choices = [listen] if isinstance(listen, str) else list(listen)
        if not choices:
            raise ClientError("[api] listen is empty: no address to reach the daemon on",
                              EXIT_USAGE)
        chosen = next((c for c in choices if c.startswith("unix:")), choices[0])
        if chosen.startswith("unix:"):
            return cls(chosen, path=chosen.removeprefix("unix:"))
        host, _, port = chosen.rpartition(":")
        host = host.strip("[]")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ClientError(f"[api] listen = {chosen!r}: expected host:port or unix:/path",
                              EXIT_USAGE)
        # a daemon listening on every interface is reached on loopback
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}.get(
            host, host)
        return cls(chosen, host=host, port=int(port))


class UnixHTTPConnection(http.client.HTTPConnection):
    """``http.client`` over an AF_UNIX stream socket; the Host header says localhost."""

    def __init__(self, path: str, timeout: float | None = TIMEOUT_S) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


# -- the HTTP client -------------------------------------------------------------------


class Client:
    """Requests to the control API; each one on its own short connection."""

    def __init__(self, address: Address, token: str = "") -> None:
        self.address = address
        self.token = token

    def call(self, method: str, target: str, body: dict[str, Any] | None = None) -> Any:
        """The ``data`` of a successful answer; an ``ApiFailure`` for an error envelope."""
        conn, _, response = self._send(method, target, body)
        try:
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self.unreachable(exc) from None
        finally:
            conn.close()
        return _data(response, raw)

    def events(self, run_id: int) -> EventStream:
        """Subscribe to the events of ``run_id``; the stream is open when this returns."""
        conn, sock, response = self._send("GET", f"/v1/events?run={run_id}", None,
                                          accept="text/event-stream")
        if response.status != 200:
            try:
                _data(response, response.read())  # raises the daemon's error
            finally:
                conn.close()
            raise ApiFailure(response.status, "not_a_stream", "no event stream was opened")
        return EventStream(conn, sock, response)

    def _send(self, method: str, target: str, body: dict[str, Any] | None,
              accept: str = "application/json",
              ) -> tuple[http.client.HTTPConnection, socket.socket | None,
                         http.client.HTTPResponse]:
        """Send one request; the socket is returned too, as http.client may drop it."""
        if self.address.path:
            conn: http.client.HTTPConnection = UnixHTTPConnection(self.address.path)
        else:
            conn = http.client.HTTPConnection(self.address.host, self.address.port,
                                              timeout=TIMEOUT_S)
        headers = {"Accept": accept, "User-Agent": f"syncd/{__version__}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, target, payload, headers)
            sock = conn.sock
            return conn, sock, conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self.unreachable(exc) from None

    def unreachable(self, exc: BaseException) -> DaemonUnreachable:
        """Say in one line why the daemon could not be talked to."""
        where = self.address.label
        if isinstance(exc, ConnectionRefusedError | FileNotFoundError):
            return DaemonUnreachable(f"the daemon is not running (no answer on {where})",
                                     "start it with: syncd run")
        if isinstance(exc, PermissionError):
            return DaemonUnreachable(f"not allowed to connect to the daemon on {where}",
                                     "its socket is 0660: run as root or as a member of "
                                     "the socket's group")
        if isinstance(exc, TimeoutError):
            return DaemonUnreachable(f"the daemon did not answer on {where} within "
                                     f"{TIMEOUT_S:.0f}s")
        if isinstance(exc, ConnectionResetError | http.client.HTTPException):
            return DaemonUnreachable(f"the daemon on {where} closed the connection without "
                                     "an answer", "check [api] listen and the daemon's log",
                                     closed=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return DaemonUnreachable(f"cannot reach the daemon on {where}: {reason}")


def _data(response: http.client.HTTPResponse, raw: bytes) -> Any:
    try:
        envelope = json.loads(raw)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or "success" not in envelope:
        raise ApiFailure(response.status, "not_syncd",
                         f"the daemon answered HTTP {response.status} {response.reason} "
                         "without syncd's JSON envelope")
    if response.status >= 400 or not envelope["success"]:
        error = envelope.get("error") or {}
        raise ApiFailure(response.status, str(error.get("code", response.status)),
                         str(error.get("message", response.reason)))
    return envelope.get("data")


class EventStream:
    """An open ``/v1/events`` answer, read as ``(name, data)`` server-sent events."""

    def __init__(self, conn: http.client.HTTPConnection, sock: socket.socket | None,
                 response: http.client.HTTPResponse) -> None:
        self.conn, self.sock, self.response = conn, sock, response
        if self.sock is not None:
            self.sock.settimeout(None)  # a quiet run is fine; ``interrupt`` ends the wait

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return parse_events(self._lines())

    def _lines(self) -> Iterator[bytes]:
        try:
            yield from iter(self.response.readline, b"")
        except (OSError, ValueError, http.client.HTTPException):
            return  # the daemon went away, or ``interrupt`` closed the stream

    def interrupt(self) -> None:
        """End the iteration from another thread, as if the daemon closed the stream."""
        if self.sock is not None:
            with contextlib.suppress(OSError):  # already closed
                self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.response.close()
        self.conn.close()
        if self.sock is not None:
            self.sock.close()


def parse_events(lines: Iterable[bytes]) -> Iterator[tuple[str, Any]]:
    """Server-sent events as ``(name, JSON data)``; comment lines (keep-alives) are skipped."""
    name, data = "", []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = text
                yield name or "message", payload
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)


# -- following a run -------------------------------------------------------------------


def wait_for(client: Client, run_id: int,
             on_event: Callable[[str, dict[str, Any]], None]) -> Run:
    """Follow ``run_id`` until it completed, failed or was cancelled; the run as it ended.

    The subscription is opened before the run is first read, so a run that finishes
    in between is seen either way. Its status is also polled, in case the last event
    is lost (a slow client's queue drops its oldest events). If the stream ends early
    the daemon is asked again (a daemon in the middle of stopping may hang up on that:
    asked again too, a few times); one that stopped or is stopping (503) is a
    ``DaemonUnreachable`` saying the run goes on later.
    """
    pause = threading.Event()
    delay, hung_up = 0.2, 0
    try:
        while True:
            try:
                found = _follow(client, run_id, on_event)
            except DaemonUnreachable as exc:
                hung_up += 1
                if not exc.closed or hung_up > RETRIES:
                    raise
            else:
                if found is not None:
                    return found
                hung_up = 0
            pause.wait(delay)  # the stream ended early: the daemon restarts or stops
            delay = min(delay * 2, 5.0)
    except (DaemonUnreachable, ApiFailure) as exc:
        if isinstance(exc, ApiFailure) and exc.status != 503:
            raise
        raise DaemonUnreachable(f"the daemon stopped answering before run {run_id} "
                                f"finished: {exc}",
                                f"the run is saved and goes on when the daemon runs again; "
                                f"see it with: syncd show {run_id}") from None


def _follow(client: Client, run_id: int,
            on_event: Callable[[str, dict[str, Any]], None]) -> Run | None:
    """One subscription: the finished run, or None when the stream ended before that."""
    stream = client.events(run_id)
    stop = threading.Event()
    polled: list[Run | ClientError] = []
    watcher = threading.Thread(target=_poll, args=(client, run_id, stream, stop, polled),
                               name=f"poll-run-{run_id}", daemon=True)
    try:
        run = client.call("GET", f"/v1/sync/{run_id}")
        if run["status"] in FINISHED:
            return run
        watcher.start()
        for kind, data in stream:
            if not isinstance(data, dict) or data.get("runId") != run_id:
                continue
            on_event(kind, data)
            if kind == "run_finished":
                run = client.call("GET", f"/v1/sync/{run_id}")
                if run["status"] in FINISHED:
                    return run
                # stopped for a shutdown: it stays resumable, and the stream ends soon
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join(TIMEOUT_S)
        stream.close()
    if polled:  # the poll saw the end (or lost the daemon) and closed the stream
        if isinstance(polled[0], ClientError):
            raise polled[0]
        return polled[0]
    run = client.call("GET", f"/v1/sync/{run_id}")
    return run if run["status"] in FINISHED else None


def _poll(client: Client, run_id: int, stream: EventStream, stop: threading.Event,
          polled: list[Run | ClientError]) -> None:
    while not stop.wait(POLL_S):
        try:
            run = client.call("GET", f"/v1/sync/{run_id}")
        except ClientError as exc:
            polled.append(exc)
        else:
            if run.get("status") not in FINISHED:
                continue
            polled.append(run)
        stream.interrupt()
        return


# -- what each command prints ----------------------------------------------------------


def run_command(args: argparse.Namespace, path: Path) -> int:
    """Run one client command; every failure is one line and a documented exit code."""
    from syncd.config import load_config

    config = load_config(path)
    try:
        client = Client(Address.parse(config.api.listen), _token(config.api.token_file))
        return COMMANDS[args.command](client, args)
    except ClientError as exc:
        print(f"syncd: error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except (KeyError, TypeError) as exc:
        print(f"syncd: error: the daemon's answer lacks what this syncd {__version__} "
              f"expects ({type(exc).__name__}: {exc})", file=sys.stderr)
        return EXIT_FAILED


def _token(source: str | Secret) -> str:
    """The bearer token from ``[api] token_file`` (a path or a secret); "" for no auth."""
    if not source:
        return ""
    try:
        token = Path(source).read_text().strip() if isinstance(source, str) else source.reveal()
    except OSError as exc:
        raise ClientError(f"cannot read the API token from {source}: {exc.strerror}",
                          EXIT_AUTH, "run as a user who may read [api] token_file") from None
    except LookupError as exc:
        raise ClientError(f"cannot read the API token: {exc}", EXIT_AUTH) from None
    if not token:
        raise ClientError(f"the API token in {source} is empty", EXIT_AUTH)
    return token


def cmd_runs(client: Client, args: argparse.Namespace) -> int:
    query = {"status": args.status, "job": args.job, "limit": args.limit,
             "before": args.before}
    params = urlencode({k: v for k, v in query.items() if v is not None})
    data = client.call("GET", f"/v1/sync/runs?{params}")
    runs = data["runs"]
    if not runs:
        print("no runs")
        return EXIT_OK
    print(runs_table(runs))
    if data.get("nextBefore"):
        print(f"(older runs: syncd runs --before {data['nextBefore']})", file=sys.stderr)
    return EXIT_OK


_COLUMNS = (("id", "syncRunId"), ("job", "job"), ("trigger", "trigger"), ("status", "status"),
            ("processed", "itemsProcessed"), ("inserted", "itemsInserted"),
            ("updated", "itemsUpdated"), ("unchanged", "itemsUnchanged"),
            ("failed", "itemsFailed"), ("started", "startedAt"))


def runs_table(runs: list[Run]) -> str:
    """Runs as aligned columns: numbers to the right, words to the left."""
    rows = [[title for title, _ in _COLUMNS]]
    for run in runs:
        row = [str(run.get(key) if run.get(key) is not None else "-") for _, key in _COLUMNS]
        row[-1] = _when(run.get("startedAt"))
        if run.get("dryRun"):
            row[3] += " (dry)"
        rows.append(row)
    numeric = [isinstance(runs[0].get(key), int) for _, key in _COLUMNS]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = []
    for row in rows:
        cells = [cell.rjust(width) if right else cell.ljust(width)
                 for cell, width, right in zip(row, widths, numeric, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def cmd_show(client: Client, args: argparse.Namespace) -> int:
    run = client.call("GET", f"/v1/sync/{args.run}")
    for label, value in show_fields(run):
        print(f"{label:<11} {value}")
    errors = run.get("errors") or []
    total = run.get("errorsTotal", len(errors))
    if total:
        print(f"errors      {total}")
        for line in error_lines(run, retryable=True):
            print(line)
    return EXIT_OK


def show_fields(run: Run) -> list[tuple[str, str]]:
    """The lines of ``syncd show``, in reading order; empty fields are left out."""
    counts = (f"{run['itemsProcessed']} processed, {run['itemsInserted']} inserted, "
              f"{run['itemsUpdated']} updated, {run['itemsUnchanged']} unchanged, "
              f"{run['itemsSkipped']} skipped, {run['itemsFailed']} failed, "
              f"{run.get('itemsMissing') or 0} missing")
    checkpoint = run.get("checkpoint")
    fields = [
        ("run", str(run["syncRunId"])),
        ("job", run["job"]),
        ("status", run["status"] + (" (dry run: nothing written)" if run.get("dryRun")
                                    else "")),
        ("trigger", f"{run['trigger']}, attempt {run.get('attempt') or 1}"),
        ("retry of", f"run {run['parentRun']}" if run.get("parentRun") else ""),
        ("source", " ".join(str(v) for v in (run.get("sourceType"),
                                             run.get("sourceIdentifier")) if v)),
        ("host", run.get("host") or ""),
        ("created", _when(run.get("createdAt"))),
        ("started", _when(run.get("startedAt"))),
        ("completed", _when(run.get("completedAt"))),
        ("duration", _duration(run)),
        ("items", counts),
        ("checkpoint", json.dumps(checkpoint) if checkpoint is not None else ""),
        ("error", run.get("errorMessage") or ""),
    ]
    return [(label, value) for label, value in fields if value and value != "-"]


def error_lines(run: Run, retryable: bool = False) -> list[str]:
    """A run's errors as ``syncd sync`` prints them: ``type/code: item: message``."""
    errors = run.get("errors") or []
    lines = []
    for error in errors:
        where = f"{error['item']}: " if error.get("item") else ""
        again = " (retryable)" if retryable and error.get("retryable") else ""
        lines.append(f"  {error['type']}/{error['code']}: {where}{error['message']}{again}")
    more = run.get("errorsTotal", len(errors)) - len(errors)
    if more > 0:
        lines.append(f"  … {more} more errors in sync_errors")
    return lines


def summary(run: Run) -> str:
    """One line saying what a run did, worded as ``syncd sync`` words it."""
    label = " (dry run: nothing written)" if run.get("dryRun") else ""
    missing = f", {run['itemsMissing']} missing" if run.get("itemsMissing") else ""
    text = (f"run {run['syncRunId']} {run['job']} {run['status']}{label}: "
            f"{run['itemsProcessed']} processed, {run['itemsInserted']} inserted, "
            f"{run['itemsUpdated']} updated, {run['itemsUnchanged']} unchanged, "
            f"{run['itemsSkipped']} skipped, {run['itemsFailed']} failed{missing}")
    seconds = _seconds(run)
    if seconds is not None:
        rate = run["itemsProcessed"] / seconds if seconds > 0 else 0
        text += f" in {seconds:.1f}s ({rate:,.0f}/s)"
    if run.get("errorMessage") and run["status"] != "completed":
        text += f"\n  error: {run['errorMessage']}"
    return text


def cmd_trigger(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"job": args.job}
    if args.file:
        # the daemon has another working directory; a URL goes as it is
        body["sourceIdentifier"] = args.file if "://" in args.file else os.path.abspath(
            os.path.expanduser(args.file))
    if args.dry_run:
        body["dryRun"] = True
    data = client.call("POST", "/v1/sync/trigger", body)
    run_id = data["syncRunId"]
    print(f"run {run_id} started ({data.get('job', args.job)}"
          f"{', dry run' if args.dry_run else ''})", flush=True)
    return _wait(client, run_id) if args.wait else EXIT_OK


def _wait(client: Client, run_id: int) -> int:
    from syncd.cli.progress import ProgressBars

    bars = ProgressBars()

    def on_event(kind: str, data: dict[str, Any]) -> None:
        position = data.get("position")
        bars(kind, {"run_id": run_id, "job": data.get("job", ""),
                    "processed": data.get("processed") or 0, "size": data.get("size"),
                    "position": position if isinstance(position, int) else 0})

    try:
        run = wait_for(client, run_id, on_event)
    except KeyboardInterrupt:
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


def cmd_retry(client: Client, args: argparse.Namespace) -> int:
    data = client.call("POST", f"/v1/sync/{args.run}/retry")
    print(f"run {data['syncRunId']} started (retry of run {data.get('parentRun', args.run)})")
    return EXIT_OK


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    data = client.call("POST", f"/v1/sync/{args.run}/cancel")
    if data.get("status") == "cancelling":
        print(f"run {data['syncRunId']} cancelling: it stops after its current batch")
    else:
        print(f"run {data['syncRunId']} {data.get('status', 'cancelled')}")
    return EXIT_OK


def cmd_resume(client: Client, args: argparse.Namespace) -> int:
    resumed = client.call("POST", "/v1/sync/resume")["resumed"]
    if resumed:
        print(f"resumed run{'s' if len(resumed) > 1 else ''} "
              f"{', '.join(str(r) for r in resumed)}")
    else:
        print("nothing to resume")
    return EXIT_OK


COMMANDS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "runs": cmd_runs, "show": cmd_show, "trigger": cmd_trigger, "retry": cmd_retry,
    "cancel": cmd_cancel, "resume": cmd_resume,
}


# -- times -----------------------------------------------------------------------------


def _moment(value: object) -> datetime | None:
    """An ISO-8601 timestamp from the API; naive ones are UTC, as the API writes them."""
    if not isinstance(value, str) or not value:
        return None
    text = value.removesuffix("Z")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _when(value: object) -> str:
    """A timestamp in local time, to the second; the raw text if it does not parse."""
    moment = _moment(value)
    if moment is None:
        return str(value) if value else "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _seconds(run: Run) -> float | None:
    began, ended = _moment(run.get("startedAt")), _moment(run.get("completedAt"))
    if began is None or ended is None:
        return None
    return max((ended - began).total_seconds(), 0.0)


def _duration(run: Run) -> str:
    seconds = _seconds(run)
    return "" if seconds is None else f"{seconds:.1f}s"
