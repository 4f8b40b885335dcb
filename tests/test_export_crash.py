"""Crash safety of remote writes: kill -9 of ``syncd sync --all`` during an export.

SPEC §8: the id map is the outbox, so a run killed at any instant — before a request,
after sending but before the answer, after the answer but before the commit —
resumes by asking the remote first. Real processes, a real fake: after each kill and
the resumes, the fake holds no record created twice and every id-map row is synced.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import export_setup as ex
from tests.fakes.broadstreet import BroadstreetFake
from tests.poll import wait_until
from tests.syncd_cli import syncd

SYNCD = str(Path(sys.executable).with_name("syncd"))
SEED = int(os.environ.get("SYNCD_CRASH_SEED", "20240917"))


def expected_rows(data: dict[str, list[dict[str, object]]]) -> int:
    return sum(len(rows) for rows in data.values())


def resume_until_done(cfg: Path, attempts: int = 5) -> None:
    for _ in range(attempts):
        done = syncd("sync", "--all", "--config", str(cfg), timeout=120)
        if done.returncode == 0:
            return
    raise AssertionError(f"no completed resume: {done.stdout}{done.stderr}")


def assert_exported(api: BroadstreetFake, root: Path, total: int) -> None:
    assert not api.duplicates(), f"created twice: {api.duplicates()}"
    rows = ex.id_map(root)
    assert len(rows) == total and {s for *_, s in rows} == {"synced"}, rows
    assert sum(len(r) for r in api.records.values()) == total


def kill_at(cfg: Path, api: BroadstreetFake, after_posts: int, delay: float) -> None:
    """Start ``syncd sync --all``; kill -9 it ``delay`` s after the fake saw that many creates."""
    posts = len([r for r in api.requests if r[0] == "POST"])
    proc = subprocess.Popen([SYNCD, "sync", "--all", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: proc.poll() is not None or len(
            [r for r in api.requests if r[0] == "POST"]) >= posts + after_posts, timeout=60)
        time.sleep(delay)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(30)


def sweep(tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    with BroadstreetFake(latency=0.005) as api:
        data = ex.hierarchy(networks=3, per=3)
        ex.load(tmp_path, data)
        cfg = ex.write_config(tmp_path, api.url, batch_rows=4)
        total = expected_rows(data)
        for _ in range(kills):
            kill_at(cfg, api, rng.randrange(0, 12), rng.uniform(0, 0.03))
        resume_until_done(cfg)
        assert_exported(api, tmp_path, total)


def test_kill_9_at_random_instants_creates_nothing_twice(tmp_path: Path) -> None:
    """A sample in every run: a few kills at random instants of the export."""
    sweep(tmp_path, kills=4, seed=SEED)


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(4))
def test_kill_9_sweep(tmp_path: Path, round_: int) -> None:
    sweep(tmp_path, kills=8, seed=SEED + round_)


def test_kill_between_a_creates_answer_and_its_commit(tmp_path: Path) -> None:
    """The answer arrived, the process dies before committing it: the resume adopts."""
    with BroadstreetFake() as api:
        data = ex.hierarchy(networks=1, per=2)
        ex.load(tmp_path, data)
        cfg = ex.write_config(tmp_path, api.url)
        marker = tmp_path / "killed"
        env = {"SYNCD_TEST_CRASH_BEFORE_SETTLE": str(marker)}
        done = syncd("sync", "--all", "--config", str(cfg), env=env)
        assert done.returncode == -signal.SIGKILL and marker.exists()
        assert api.records["networks"], "the create was carried out before the kill"
        assert {s for *_, s in ex.id_map(tmp_path)} == {"pending"}
        resume_until_done(cfg)
        assert_exported(api, tmp_path, expected_rows(data))


def test_kill_after_sending_before_the_answer(tmp_path: Path) -> None:
    """The remote creates, the answer hangs, the process is killed: the resume adopts."""
    with BroadstreetFake() as api:
        data = ex.hierarchy(networks=1, per=1)
        ex.load(tmp_path, data)
        cfg = ex.write_config(tmp_path, api.url)
        api.hang_after_create_next()
        proc = subprocess.Popen([SYNCD, "sync", "--all", "--config", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: bool(api.records["networks"]), timeout=60)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        resume_until_done(cfg)
        assert_exported(api, tmp_path, expected_rows(data))
