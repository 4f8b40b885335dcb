"""Every key of a config that uses every section, set to values of the wrong kind: each is
a ``ConfigError`` naming a key, never another exception (a traceback for the user).

What ``syncd check-config`` runs once the TOML is parsed: the config's models, then each
job's adapters' options. Found this way: ``[jobs.X.schedule]`` written as a table reached
the cron check as a dict (``AttributeError``).
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.config import validate
from syncd.engine import resolve_jobs
from syncd.errors import ConfigError
from syncd.plugins import get_pluginmanager

EVERY_SECTION = """
[daemon]
state_dir = "/tmp/syncd-fuzz/state"
retry_failed = "0 3 * * *"
cleanup = "17 4 * * *"
max_concurrent_runs = 2
log_format = "json"
keep_runs_days = 30
[usb]
enabled = false
max_file_mb = 512
[api]
listen = "127.0.0.1:8765"
allowed_paths = ["/tmp"]
[remotes.bs]
base_url = "http://127.0.0.1:9/api"
rate_limit = "5/s"
concurrency = 2
headers = { X-A = "b" }
[remotes.bs.retry]
attempts = 3
max_delay = 10.0
[remotes.bs.auth]
type = "api_key"
name = "access_token"
in = "query"
value = { env = "SYNCD_FUZZ_TOKEN" }
[notify]
on = ["failed"]
digest = "daily"
digest_at = "07:00"
attempts = 3
[notify.email]
host = "127.0.0.1"
port = 2525
from = "a@example.org"
to = ["b@example.org"]
starttls = false
[jobs.music]
schedule = "0 3 * * *"
on_missing = "mark_unavailable"
max_missing = "50%"
depends_on = []
batch_rows = 500
[jobs.music.source]
type = "csv"
path = "/tmp/syncd-fuzz/music.csv"
delimiter = "auto"
encoding = "auto"
has_header = true
[jobs.music.target]
type = "sql"
table = "content_index"
key = ["external_id"]
[jobs.music.mapping]
external_id = "id"
title = "song_name"
[jobs.music.constants]
content_type = "music"
[jobs.music.watch]
path = "/tmp/syncd-fuzz/inbox"
patterns = ["*.csv"]
after = "archive"
[jobs.music.usb]
patterns = ["music/*.csv"]
[jobs.music.retry]
attempts = 5
[jobs.music.webhook]
secret = { env = "SYNCD_FUZZ_HOOK" }
[jobs.export]
depends_on = ["music"]
[jobs.export.source]
type = "sql"
table = "content_index"
[jobs.export.target]
type = "rest"
remote = "bs"
key = ["id"]
id_path = "item.id"
create = { method = "POST", path = "/items" }
update = { method = "PUT", path = "/items/{remote_id}" }
[jobs.export.mapping]
id = "external_id"
title = "title"
"""
WRONG_KINDS: tuple[Any, ...] = ({"x": 1}, [1, {"y": 2}], 7, True, "zz", -1.5, "")


def check(raw: dict[str, Any], registry: Any) -> None:
    resolve_jobs(validate(raw, "fuzz.toml"), registry, Path("fuzz.toml"))


def keys(table: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key, tables and their keys alike."""
    for name, value in table.items():
        yield (*path, name)
        if isinstance(value, dict):
            yield from keys(value, (*path, name))


def test_every_key_set_to_the_wrong_kind_is_a_config_error(monkeypatch):
    monkeypatch.setenv("SYNCD_FUZZ_TOKEN", "t")
    monkeypatch.setenv("SYNCD_FUZZ_HOOK", "h")
    _, registry = get_pluginmanager()
    raw = tomllib.loads(EVERY_SECTION)
    check(raw, registry)  # the config itself is good
    tried = 0
    for path in keys(raw):
        for wrong in WRONG_KINDS:
            doc = copy.deepcopy(raw)
            table = doc
            for name in path[:-1]:
                table = table[name]
            table[path[-1]] = wrong
            try:
                check(doc, registry)
            except ConfigError:
                pass
            except Exception as exc:
                pytest.fail(f"{'.'.join(path)} = {wrong!r}: {type(exc).__name__}: {exc}")
            tried += 1
    assert tried > 500
