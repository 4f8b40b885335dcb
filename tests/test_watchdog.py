"""The watchdog pings systemd only while the loop, the database and the runs progress.

systemd's end is a real unix datagram socket named by ``$NOTIFY_SOCKET``, read here;
the run workers and the database are real (a gated source that holds its worker, a
PostgreSQL store whose server stops answering).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.engine import Request
from syncd.engine.memory import MemoryTarget
from syncd.store import Store
from syncd.watchdog import Watchdog
from tests.conftest import BACKENDS
from tests.engine.test_engine import GatedPlugin, job, make_engine, records
from tests.poll import wait_for


@pytest.fixture(autouse=True)
def clean_tables() -> Iterator[None]:
    """The memory target's tables are shared by the process: leave none behind."""
    MemoryTarget.tables.clear()
    yield
    MemoryTarget.tables.clear()


class FakeSystemd:
    """The socket systemd would listen on; collects every datagram."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)

    def received(self) -> list[str]:
        got = []
        while True:
            try:
                got.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return got


@pytest.fixture
def systemd(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[FakeSystemd]:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="syncd-wd-", dir="/tmp")) / "notify"
    fake = FakeSystemd(path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield fake
    fake.sock.close()


async def test_pings_while_healthy_and_not_while_a_run_is_wedged(
        store: Store, tmp_path: Path, systemd: FakeSystemd) -> None:
    gate = threading.Event()
    plugin = GatedPlugin(gate)
    engine = make_engine(store, tmp_path, {"j": job(records(10), source={"type": "gated"})},
                         plugins=(plugin,))
    watchdog = Watchdog(store, engine, stall_s=0.3)
    assert await watchdog.check(1.0)
    assert systemd.received() == ["WATCHDOG=1"]

    run_id = await engine.start(Request("j", "cli"))
    await wait_for(lambda: plugin.active == 1)  # its worker is held inside a read
    await wait_for(lambda: engine.stalled(0.3))
    assert not await watchdog.check(1.0)
    assert systemd.received() == []
    assert watchdog.failing is not None and f"run {run_id}" in watchdog.failing

    gate.set()  # the worker moves again: the run ends and the pings resume
    assert (await engine.wait(run_id)).status == "completed"
    assert await watchdog.check(1.0)
    assert systemd.received() == ["WATCHDOG=1"]


@pytest.mark.parametrize("database_url", [BACKENDS[1]], indirect=True)
async def test_no_ping_while_the_database_does_not_answer(
        store: Store, tmp_path: Path, systemd: FakeSystemd) -> None:
    engine = make_engine(store, tmp_path, {"j": job(records(1))})
    watchdog = Watchdog(store, engine, stall_s=60)
    assert await watchdog.check(2.0)
    assert systemd.received() == ["WATCHDOG=1"]

    # the server "hangs": connections are accepted and never answered
    accepted: list[asyncio.StreamWriter] = []

    async def blackhole(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(blackhole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    db = store.db
    saved = dict(db.connect_params)
    try:
        db.connect_params.update(host="127.0.0.1", port=port)
        watchdog._pinger.submit(store.close).result()  # its thread reconnects, and hangs
        assert not await watchdog.check(0.5)
        assert systemd.received() == []
        assert "did not answer" in str(watchdog.failing)
    finally:
        db.connect_params.clear()
        db.connect_params.update(saved)
        for writer in accepted:
            writer.close()  # the hung connection attempt fails; the next one works
        server.close()
    await wait_for(lambda: watchdog.check(2.0), timeout=20)
    assert "WATCHDOG=1" in systemd.received()
