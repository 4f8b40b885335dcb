"""The client commands (``syncd runs``, ``show``, ``trigger``, …) as a user runs them.

The real ``syncd`` binary runs in a subprocess against a stand-in daemon: an aiohttp
app in a thread of this process, answering on TCP and on a unix socket with the
envelopes, runs and server-sent events of the API contract (SPEC §5). Its event
streams are scripted per job, and wait for the client to read the run before they
move on, so each path through ``trigger --wait`` is taken on purpose, without
sleeps. One more test runs a real ``syncd run`` end to end, once the API exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from syncd.cli.api_client import Address, ClientError
from syncd.cli.follow import parse_events
from syncd.cli.views import runs_table
from tests.poll import wait_until
from tests.syncd_cli import SYNCD, run_on_terminal, syncd

Run = dict[str, Any]
NOW = "2024-06-11T08:00:00Z"


def make_run(run_id: int, job: str = "music", status: str = "completed", **fields: Any) -> Run:
    """A run as the API shows it, with every field of the contract."""
    run = {"syncRunId": run_id, "job": job, "trigger": "api", "status": status,
           "sourceType": "csv", "sourceIdentifier": f"/srv/data/{job}.csv",
           "itemsProcessed": 4, "itemsInserted": 2, "itemsUpdated": 1, "itemsUnchanged": 0,
           "itemsSkipped": 0, "itemsFailed": 1, "itemsMissing": 0, "createdAt": NOW,
           "startedAt": NOW, "completedAt": "2024-06-11T08:00:02Z",
           "checkpoint": {"offset": 120}, "errorMessage": None, "attempt": 1,
           "parentRun": None, "dryRun": False, "host": "box"}
    if status not in ("completed", "failed", "cancelled"):
        run["completedAt"] = None
    run.update(fields)
    return run


def envelope(data: Any, status: int = 200) -> web.Response:
    return web.json_response({"success": True, "data": data, "timestamp": NOW}, status=status)


def failure(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"success": False, "error": {"code": code, "message": message},
                              "timestamp": NOW}, status=status)


@dataclass
class FakeDaemon:
    """The control API's contract, served from memory on a loop in a background thread.

    ``scripts`` says how a triggered job's run goes (see ``_play``); ``requests``
    records what clients sent, headers included, for the tests to check.
    """

    socket_path: Path
    token: str = ""
    runs: dict[int, Run] = field(default_factory=dict)
    errors: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    scripts: dict[str, str] = field(default_factory=lambda: {"music": "complete"})
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    closing: bool = False  # answer 503, as a daemon that is stopping

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.read: dict[int, asyncio.Event] = {}  # set once a client has read the run
        self.runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()
        self._call(self._start())

    def stop(self) -> None:
        if self.runner is not None:
            self._call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def _call(self, coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/v1/sync/runs", self.list_runs)
        app.router.add_post("/v1/sync/trigger", self.trigger)
        app.router.add_post("/v1/sync/resume", self.resume)
        app.router.add_get("/v1/sync/{id:\\d+}", self.get_run)
        app.router.add_post("/v1/sync/{id:\\d+}/retry", self.retry)
        app.router.add_post("/v1/sync/{id:\\d+}/cancel", self.cancel)
        app.router.add_get("/v1/events", self.events)
        self.runner = web.AppRunner(app, shutdown_timeout=1)
        await self.runner.setup()
        tcp = web.TCPSite(self.runner, "127.0.0.1", 0)
        await tcp.start()
        await web.UnixSite(self.runner, str(self.socket_path)).start()
        self.port = next(a[1] for a in self.runner.addresses if isinstance(a, tuple))

    async def _go_away(self) -> None:
        """Stop answering at all, as a daemon that stopped."""
        assert self.runner is not None
        runner, self.runner = self.runner, None
        await runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                    ) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.requests.append({"method": request.method, "path": request.path,
                              "query": dict(request.query), "body": body,
                              "authorization": request.headers.get("Authorization")})
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return failure(401, "unauthorized", "a valid bearer token is required")
        if self.closing:
            return failure(503, "shutting_down", "the daemon is shutting down")
        return await handler(request)

    # -- runs --------------------------------------------------------------------------

    def add(self, run: Run, errors: list[dict[str, Any]] | None = None) -> Run:
        self.runs[run["syncRunId"]] = run
        self.errors[run["syncRunId"]] = errors or []
        return run

    def _run(self, request: web.Request) -> Run:
        run = self.runs.get(int(request.match_info["id"]))
        if run is None:
            raise web.HTTPNotFound(text=json.dumps({
                "success": False, "timestamp": NOW, "error": {
                    "code": "not_found", "message": f"no run {request.match_info['id']}"}}),
                content_type="application/json")
        return run

    async def list_runs(self, request: web.Request) -> web.Response:
        q = request.query
        runs = sorted(self.runs.values(), key=lambda r: -r["syncRunId"])
        runs = [r for r in runs if q.get("status", r["status"]) == r["status"]
                and q.get("job", r["job"]) == r["job"]
                and r["syncRunId"] < int(q.get("before", 1 << 62))]
        limit = int(q.get("limit", 20))
        more = len(runs) > limit
        return envelope({"runs": runs[:limit],
                         "nextBefore": runs[limit - 1]["syncRunId"] if more else None})

    async def get_run(self, request: web.Request) -> web.Response:
        run = self._run(request)
        errors = self.errors[run["syncRunId"]]
        answer = envelope({**run, "errors": errors[:2], "errorsTotal": len(errors)})
        self.read.setdefault(run["syncRunId"], asyncio.Event()).set()
        return answer

    async def trigger(self, request: web.Request) -> web.Response:
        body = await request.json()
        job = body.get("job")
        if job not in self.scripts:
            return failure(404, "unknown_job", f"no job {job!r}; jobs: music")
        run_id = max(self.runs, default=6) + 1
        script = self.scripts[job]
        status = "completed" if script == "finished_early" else "in_progress"
        self.add(make_run(run_id, job, status, dryRun=bool(body.get("dryRun")),
                          sourceIdentifier=body.get("sourceIdentifier"),
                          itemsProcessed=3, itemsInserted=3, itemsFailed=0))
        return envelope({"syncRunId": run_id, "job": job}, status=202)

    async def resume(self, request: web.Request) -> web.Response:
        pending = [i for i, r in self.runs.items() if r["status"] == "pending"]
        return envelope({"resumed": pending}, status=202)

    async def retry(self, request: web.Request) -> web.Response:
        old = self._run(request)
        if old["status"] != "failed":
            return failure(409, "conflict", f"run {old['syncRunId']} is {old['status']}, "
                           "only failed runs are retried")
        new = self.add(make_run(max(self.runs) + 1, old["job"], "pending", trigger="retry",
                                parentRun=old["syncRunId"], attempt=old["attempt"] + 1))
        return envelope({"syncRunId": new["syncRunId"], "parentRun": old["syncRunId"]}, 202)

    async def cancel(self, request: web.Request) -> web.Response:
        run = self._run(request)
        if run["status"] in ("completed", "failed", "cancelled"):
            return failure(409, "conflict", f"run {run['syncRunId']} already {run['status']}")
        status = "cancelling" if run["status"] == "in_progress" else "cancelled"
        return envelope({"syncRunId": run["syncRunId"], "status": status}, status=202)

    # -- events ------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        run_id = int(request.query["run"])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": syncd events\n\n")
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):  # it left
            await self._play(response, run_id)
        return response

    async def _play(self, response: web.StreamResponse, run_id: int) -> None:
        """The run's story, told once the client has read the run (so it is subscribed).

        complete / fail: started, progress, an error, a finish for another run (to be
        ignored), then the finish; slow: the same, paced for a progress bar;
        finished_early: the run ended before the stream opened, nothing more is sent;
        lost_finish: the run fails but its finish event never comes;
        daemon_stops: the run pauses for a shutdown, then the daemon stops answering;
        shutting_down: the same, but the daemon still answers, with 503s;
        anything else (endless): the run goes on, nothing but keep-alives are sent.
        """
        run = self.runs[run_id]
        script = self.scripts[run["job"]]
        await asyncio.wait_for(self.read.setdefault(run_id, asyncio.Event()).wait(), 30)

        async def send(kind: str, **data: Any) -> None:
            payload = json.dumps({"runId": data.pop("runId", run_id), "job": run["job"], **data})
            await response.write(f"event: {kind}\ndata: {payload}\n\n".encode())

        if script in ("complete", "fail", "slow", "lost_finish", "daemon_stops",
                      "shutting_down"):
            await send("run_started")
            for step in (1, 2, 3):
                await send("progress", processed=step, position=step * 40, size=120, rate=9.5)
                if script == "slow":
                    await asyncio.sleep(0.15)  # the pace of a real run, for tqdm to draw
            await send("error", count=1, message="line 3: expected 2 fields, got 3")
            await send("run_finished", runId=999, status="failed", error="another run")
        if script in ("complete", "slow"):
            run.update(status="completed", completedAt="2024-06-11T08:00:02Z")
            await send("run_finished", status="completed", error=None)
        elif script in ("fail", "lost_finish"):
            run.update(status="failed", completedAt="2024-06-11T08:00:02Z", itemsFailed=1,
                       errorMessage="target table is locked")
            self.errors[run_id] = [{"type": "target", "code": "locked", "item": None,
                                    "message": "database is locked", "retryable": True}]
            if script == "fail":
                await send("run_finished", status="failed", error="target table is locked")
        elif script in ("daemon_stops", "shutting_down"):
            run.update(status="pending")
            read = self.read[run_id]
            read.clear()
            await send("run_finished", status="pending", error=None)
            await asyncio.wait_for(read.wait(), 30)  # the client saw it is not over
            if script == "shutting_down":
                self.closing = True
            else:
                asyncio.get_running_loop().create_task(self._go_away())
            return
        while True:  # keep-alives until the client leaves
            await response.write(b": keep-alive\n\n")
            await asyncio.sleep(0.05)


# -- fixtures and helpers --------------------------------------------------------------


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Socket paths must fit in 108 bytes; pytest's tmp_path may not."""
    path = Path(tempfile.mkdtemp(prefix="syncd-cli-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(short_dir: Path) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(short_dir / "api.sock")
    fake.start()
    yield fake
    fake.stop()


def write_config(directory: Path, listen: str | list[str], token_file: str = '""') -> Path:
    """A config with only the ``[api]`` section the client commands read."""
    path = directory / "syncd.toml"
    path.write_text(f"[api]\nlisten = {json.dumps(listen)}\ntoken_file = {token_file}\n")
    return path


@pytest.fixture(params=["tcp", "unix"])
def config(request: pytest.FixtureRequest, daemon: FakeDaemon, tmp_path: Path) -> Path:
    """The fake daemon's address in a config, over TCP or over its unix socket."""
    listen = (f"127.0.0.1:{daemon.port}" if request.param == "tcp"
              else f"unix:{daemon.socket_path}")
    return write_config(tmp_path, listen)


@pytest.fixture
def tcp_config(daemon: FakeDaemon, tmp_path: Path) -> Path:
    return write_config(tmp_path, f"127.0.0.1:{daemon.port}")


def cli(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``syncd ARGS --config CONFIG``, which never prints a traceback."""
    result = syncd(*args, "--config", str(config), timeout=timeout)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


# -- the commands ----------------------------------------------------------------------


def test_runs_prints_a_table_newest_first(daemon: FakeDaemon, config: Path) -> None:
    daemon.add(make_run(5, status="failed", errorMessage="boom"))
    daemon.add(make_run(6, job="videos", trigger="schedule", itemsProcessed=12345))
    daemon.add(make_run(7, status="in_progress", startedAt=None))
    result = cli(config, "runs")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "job", "trigger", "status", "processed", "inserted",
                                "updated", "unchanged", "failed", "started"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["7", "music", "api", "in_progress"], ["6", "videos", "schedule", "completed"],
        ["5", "music", "api", "failed"]]
    assert lines[2].split()[4:9] == ["12345", "2", "1", "0", "1"]
    assert lines[1].endswith(" -")  # not started yet
    assert lines[2].index("12345") + 5 == lines[0].index("processed") + len("processed")


def test_runs_passes_its_filters_and_points_to_the_next_page(daemon: FakeDaemon,
                                                             tcp_config: Path) -> None:
    for run_id in range(1, 6):
        daemon.add(make_run(run_id, status="failed"))
    result = cli(tcp_config, "runs", "--status", "failed", "--job", "music", "--limit", "2")
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == ["5", "4"]
    assert "syncd runs --before 4" in result.stderr
    assert daemon.requests[-1]["query"] == {"status": "failed", "job": "music", "limit": "2"}
    assert cli(tcp_config, "runs", "--job", "nothing").stdout == "no runs\n"


def test_show_prints_the_run_and_its_errors(daemon: FakeDaemon, config: Path) -> None:
    daemon.add(make_run(5, status="failed", errorMessage="target table is locked",
                        parentRun=3, attempt=2), [
        {"type": "validation", "code": "field_count", "item": "line 3",
         "message": "expected 2 fields, got 3", "retryable": False},
        {"type": "target", "code": "locked", "item": None, "message": "database is locked",
         "retryable": True},
        {"type": "parsing", "code": "encoding", "item": "line 9", "message": "bad byte",
         "retryable": False}])
    result = cli(config, "show", "5")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in ("run         5", "status      failed", "trigger     api, attempt 2",
                     "retry of    run 3", "source      csv /srv/data/music.csv",
                     "duration    2.0s", "items       4 processed, 2 inserted, 1 updated, "
                     "0 unchanged, 0 skipped, 1 failed, 0 missing",
                     'checkpoint  {"offset": 120}', "error       target table is locked",
                     "errors      3",
                     "  validation/field_count: line 3: expected 2 fields, got 3\n",
                     "  target/locked: database is locked (retryable)",
                     "  … 1 more errors in sync_errors"):
        assert expected in out, out


def test_show_of_an_unknown_run_is_one_line_and_exit_1(daemon: FakeDaemon,
                                                       tcp_config: Path) -> None:
    result = cli(tcp_config, "show", "42")
    assert result.returncode == 1
    assert result.stderr == "syncd: error: no run 42 (not_found)\n"


def test_trigger_sends_an_absolute_file_and_prints_the_run(daemon: FakeDaemon, config: Path,
                                                           tmp_path: Path) -> None:
    result = subprocess.run([SYNCD, "trigger", "music", "--file", "in/new.csv", "--dry-run",
                             "--config", str(config)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "run 7 started (music, dry run)\n"
    assert daemon.requests[-1]["body"] == {"job": "music", "dryRun": True,
                                           "sourceIdentifier": str(tmp_path.resolve() /
                                                                   "in/new.csv")}


def test_trigger_of_an_unknown_job_exits_1_with_the_daemons_message(daemon: FakeDaemon,
                                                                    tcp_config: Path) -> None:
    result = cli(tcp_config, "trigger", "musik")
    assert result.returncode == 1
    assert result.stderr == "syncd: error: no job 'musik'; jobs: music (unknown_job)\n"


def test_trigger_wait_follows_the_events_to_completion(daemon: FakeDaemon,
                                                       config: Path) -> None:
    result = cli(config, "trigger", "music", "--wait")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "run 7 started (music)",
        "run 7 music completed: 3 processed, 3 inserted, 1 updated, 0 unchanged, "
        "0 skipped, 0 failed in 2.0s (2/s)"]
    assert daemon.requests[-1]["path"] == "/v1/sync/7"  # read again after run_finished
    events = [r for r in daemon.requests if r["path"] == "/v1/events"]
    assert [e["query"] for e in events] == [{"run": "7"}]


def test_trigger_wait_exits_1_when_the_run_fails(daemon: FakeDaemon, tcp_config: Path) -> None:
    daemon.scripts["music"] = "fail"
    result = cli(tcp_config, "trigger", "music", "--wait")
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "run 7 music failed: 3 processed, 3 inserted, 1 updated, 0 unchanged, 0 skipped, "
        "1 failed in 2.0s (2/s)",
        "  error: target table is locked",
        "  target/locked: database is locked"]


def test_trigger_wait_sees_a_run_that_finished_before_the_stream_opened(
        daemon: FakeDaemon, tcp_config: Path) -> None:
    daemon.scripts["music"] = "finished_early"
    result = cli(tcp_config, "trigger", "music", "--wait")
    assert result.returncode == 0, result.stderr
    assert "run 7 music completed" in result.stdout


def test_trigger_wait_notices_the_end_when_the_finish_event_is_lost(
        daemon: FakeDaemon, tcp_config: Path) -> None:
    daemon.scripts["music"] = "lost_finish"
    result = cli(tcp_config, "trigger", "music", "--wait")
    assert result.returncode == 1, result.stderr
    assert "run 7 music failed" in result.stdout


def test_trigger_wait_says_so_when_the_daemon_stops_first(daemon: FakeDaemon,
                                                          config: Path) -> None:
    daemon.scripts["music"] = "daemon_stops"
    result = cli(config, "trigger", "music", "--wait")
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines() == [
        "syncd: error: the daemon stopped answering before run 7 finished: the daemon is "
        f"not running (no answer on {config.read_text().split(chr(34))[1]})",
        "hint: the run is saved and goes on when the daemon runs again; see it with: "
        "syncd show 7"]


def test_trigger_wait_says_so_when_the_daemon_is_stopping(daemon: FakeDaemon,
                                                          tcp_config: Path) -> None:
    daemon.scripts["music"] = "shutting_down"
    result = cli(tcp_config, "trigger", "music", "--wait")
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(
        "syncd: error: the daemon stopped answering before run 7 finished: the daemon is "
        "shutting down (shutting_down)\nhint: the run is saved")


def test_trigger_wait_stops_waiting_on_ctrl_c_and_leaves_the_run_going(
        daemon: FakeDaemon, tcp_config: Path) -> None:
    daemon.scripts["music"] = "endless"  # in progress, with keep-alives only
    waiting = subprocess.Popen([SYNCD, "trigger", "music", "--wait", "--config",
                                str(tcp_config)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:  # following it: subscribed, then read the run
        wait_until(lambda: any(r["path"] == "/v1/sync/7" for r in daemon.requests), 30)
        waiting.send_signal(signal.SIGINT)
        out, err = waiting.communicate(timeout=30)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 130, err
    assert out == "run 7 started (music)\n"
    assert err == "\nstopped waiting; run 7 goes on in the daemon (see it with: syncd show 7)\n"


def test_trigger_wait_draws_a_progress_bar_on_a_terminal(daemon: FakeDaemon,
                                                         tcp_config: Path) -> None:
    daemon.scripts["music"] = "slow"
    code, text = run_on_terminal([SYNCD, "trigger", "music", "--wait", "--config",
                                  str(tcp_config)], timeout=60)
    assert code == 0
    assert "music #7" in text and "rows=" in text, text  # the tqdm bar
    assert "run 7 music completed" in text


def test_retry_prints_the_new_run(daemon: FakeDaemon, config: Path) -> None:
    daemon.add(make_run(5, status="failed"))
    result = cli(config, "retry", "5")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "run 6 started (retry of run 5)\n"


def test_cancel_of_a_finished_run_is_a_conflict(daemon: FakeDaemon, config: Path) -> None:
    daemon.add(make_run(5))
    daemon.add(make_run(6, status="in_progress"))
    result = cli(config, "cancel", "5")
    assert result.returncode == 1
    assert result.stderr == "syncd: error: run 5 already completed (conflict)\n"
    result = cli(config, "cancel", "6")
    assert (result.returncode, result.stdout) == (
        0, "run 6 cancelling: it stops after its current batch\n")


def test_resume_lists_what_it_resumed(daemon: FakeDaemon, tcp_config: Path) -> None:
    assert cli(tcp_config, "resume").stdout == "nothing to resume\n"
    daemon.add(make_run(3, status="pending"))
    daemon.add(make_run(4, status="pending"))
    result = cli(tcp_config, "resume")
    assert (result.returncode, result.stdout) == (0, "resumed runs 3, 4\n")
    assert daemon.requests[-1]["method"] == "POST"


@pytest.mark.parametrize("token_file", ["path", "secret_file", "secret_env"])
def test_a_token_is_sent_as_a_bearer_header(daemon: FakeDaemon, tmp_path: Path,
                                            token_file: str, monkeypatch) -> None:
    daemon.token = "s3cret-token"
    daemon.add(make_run(5))
    listen = f"127.0.0.1:{daemon.port}"
    refused = cli(write_config(tmp_path, listen), "runs")
    assert refused.returncode == 4
    assert refused.stderr.splitlines()[0] == (
        "syncd: error: a valid bearer token is required (unauthorized)")
    assert refused.stderr.splitlines()[1].startswith("hint: the token is read from")
    (tmp_path / "token").write_text("s3cret-token\n")
    monkeypatch.setenv("SYNCD_TEST_TOKEN", "s3cret-token")
    value = {"path": json.dumps(str(tmp_path / "token")),
             "secret_file": f"{{ file = {json.dumps(str(tmp_path / 'token'))} }}",
             "secret_env": '{ env = "SYNCD_TEST_TOKEN" }'}[token_file]
    result = cli(write_config(tmp_path, listen, value), "runs")
    assert result.returncode == 0, result.stderr
    assert daemon.requests[-1]["authorization"] == "Bearer s3cret-token"
    assert "s3cret" not in result.stdout + result.stderr


def test_a_wrong_token_and_an_unreadable_token_file_exit_4(daemon: FakeDaemon,
                                                           tmp_path: Path) -> None:
    daemon.token = "right"
    (tmp_path / "token").write_text("wrong\n")
    listen = f"127.0.0.1:{daemon.port}"
    wrong = cli(write_config(tmp_path, listen, json.dumps(str(tmp_path / "token"))), "runs")
    assert wrong.returncode == 4
    missing = cli(write_config(tmp_path, listen, json.dumps(str(tmp_path / "nope"))), "runs")
    assert missing.returncode == 4
    assert missing.stderr.startswith(f"syncd: error: cannot read the API token from "
                                     f"{tmp_path / 'nope'}: No such file or directory\n")


def test_no_daemon_on_a_port_exits_3_with_a_hint(tmp_path: Path) -> None:
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        result = cli(write_config(tmp_path, f"127.0.0.1:{port}"), "runs")
    assert result.returncode == 3
    assert result.stderr == (f"syncd: error: the daemon is not running (no answer on "
                             f"127.0.0.1:{port})\nhint: start it with: syncd run\n")


@pytest.mark.parametrize("leftover", [False, True], ids=["no-socket", "stale-socket"])
def test_no_daemon_on_a_socket_exits_3_with_a_hint(short_dir: Path, leftover: bool) -> None:
    path = short_dir / "gone.sock"
    if leftover:  # a socket file left by a daemon that died
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
    result = cli(write_config(short_dir, f"unix:{path}"), "trigger", "music", "--wait")
    assert result.returncode == 3
    assert result.stderr == (f"syncd: error: the daemon is not running (no answer on "
                             f"unix:{path})\nhint: start it with: syncd run\n")


def test_a_listen_list_prefers_the_unix_socket(daemon: FakeDaemon, tmp_path: Path) -> None:
    daemon.add(make_run(5))
    config = write_config(tmp_path, ["127.0.0.1:1", f"unix:{daemon.socket_path}"])
    result = cli(config, "show", "5")
    assert result.returncode == 0, result.stderr


def test_something_else_on_the_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        result = cli(write_config(tmp_path, f"127.0.0.1:{port}"), "resume")
        thread.join(10)
    assert result.returncode == 1
    assert result.stderr == ("syncd: error: the daemon answered HTTP 200 OK without syncd's "
                             "JSON envelope (not_syncd)\n")


# -- pieces, in process ----------------------------------------------------------------


def test_addresses() -> None:
    assert Address.parse("0.0.0.0:8765") == Address("0.0.0.0:8765", "127.0.0.1", 8765)
    assert Address.parse("[::]:80").host == "::1"
    assert Address.parse(["[::1]:80", "unix:/run/s.sock"]).path == "/run/s.sock"
    for bad in ("localhost", "host:0", "host:http", []):
        with pytest.raises(ClientError) as caught:
            Address.parse(bad)
        assert caught.value.exit_code == 2


def test_server_sent_events_are_parsed_as_the_standard_says() -> None:
    stream = [b": keep-alive\n", b"\n", b"event: progress\r\n", b"data: {\"a\":\n",
              b"data: 1}\n", b"id: 3\n", b"\n", b"data:plain\n", b"\n", b"event: lone\n"]
    assert list(parse_events(stream)) == [("progress", {"a": 1}), ("message", "plain")]


def test_the_runs_table_aligns_numbers_right() -> None:
    lines = runs_table([make_run(9, itemsProcessed=7),
                        make_run(10, itemsProcessed=1000)]).splitlines()
    end = lines[0].index("processed") + len("processed")
    assert lines[1][:end].endswith(" 7") and lines[2][:end].endswith(" 1000")


# -- end to end, with the real daemon --------------------------------------------------


API_PACKAGE = Path(__file__).resolve().parents[2] / "syncd" / "api" / "__init__.py"


@pytest.mark.skipif(not API_PACKAGE.exists(), reason="the control API (syncd/api) is not "
                    "built yet, so `syncd run` serves nothing to talk to")
def test_end_to_end_with_syncd_run(short_dir: Path, tmp_path: Path) -> None:
    sock = short_dir / "api.sock"
    csv = tmp_path / "music.csv"
    csv.write_text("id,song_name\n1,One\n2,Two\n3,Three\n")
    config = tmp_path / "syncd.toml"
    config.write_text(f"""\
[daemon]
state_dir = {json.dumps(str(tmp_path / 'state'))}
log_format = "json"
[usb]
enabled = false
[api]
listen = {json.dumps(f'unix:{sock}')}
allowed_paths = [{json.dumps(str(tmp_path))}]
[jobs.music.source]
type = "csv"
path = {json.dumps(str(tmp_path / 'other.csv'))}
[jobs.music.target]
type = "sql"
key = ["external_id"]
[jobs.music.mapping]
external_id = "id"
title = "song_name"
""")
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "SYNCD_CONFIG")}
    with (tmp_path / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen([SYNCD, "run", "--config", str(config)], stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        def listening() -> bool:
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()
            return sock.exists()

        wait_until(listening, 60, message=lambda: "(the daemon made no socket)")
        result = cli(config, "trigger", "music", "--file", str(csv), "--wait")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "run 1 started (music)" in result.stdout
        assert "run 1 music completed: 3 processed, 3 inserted" in result.stdout
        runs = cli(config, "runs")
        assert runs.returncode == 0, runs.stderr
        assert runs.stdout.splitlines()[1].split()[:5] == ["1", "music", "api", "completed",
                                                           "3"]
        shown = cli(config, "show", "1")
        assert f"source      csv {csv}" in shown.stdout, shown.stdout
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
    assert code == 0, (tmp_path / "daemon.log").read_text()
