"""The file target under kill -9 (SPEC §9): a real ``syncd`` process is killed while it
writes; the final path never holds a partial file, and the resumed run starts over and
writes each record once, leaving no temporary file behind."""

from __future__ import annotations

import json
from pathlib import Path

from tests.crashkit import Workspace, read_csv, wait_for_commits, write_csv

CONFIG = """\
[daemon]
state_dir = {state}
log_format = "json"
[jobs.music]
batch_rows = 500
[jobs.music.source]
type = "csv"
[jobs.music.target]
type = "file"
path = {out}
format = "ndjson"
key = ["external_id"]
[jobs.music.mapping]
external_id = "id"
title = "song_name"
"""


def test_kill_9_while_writing_then_resume(tmp_path: Path) -> None:
    source = tmp_path / "music.csv"
    write_csv(source, 60_000, seed=7)
    out = tmp_path / "out" / "music-{date}.ndjson"
    config = tmp_path / "syncd.toml"
    config.write_text(CONFIG.format(state=json.dumps(str(tmp_path / "state")),
                                    out=json.dumps(str(out))), encoding="utf-8")
    ws = Workspace(tmp_path, config, source)
    try:
        proc = ws.start()
        state = wait_for_commits(proc, ws.db, 3, timeout=60)
        assert state is not None, f"the run ended before the kill\n{ws.log_tail()}"
        proc.kill()
        proc.wait(timeout=30)
        folder = tmp_path / "out"
        assert [p.suffix for p in folder.iterdir()] == [".tmp"], "no partial file, only a temp"

        ws.finish()
        [final] = list(folder.iterdir())
        assert final.name.startswith("music-") and final.suffix == ".ndjson"
        ids = [json.loads(line)["external_id"] for line in final.read_text().splitlines()]
        assert len(ids) == len(set(ids)) == 60_000
        assert set(ids) == {r[0] for r in read_csv(source)}
    finally:
        ws.close()
