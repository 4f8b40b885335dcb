"""Config: defaults, one-line errors naming file and key, secrets that never leak."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncd.config import Secret, load_config, validate
from syncd.errors import ConfigError
from tests.syncd_cli import syncd

MUSIC = """
[daemon]
state_dir = "{state}"
log_format = "json"
[jobs.music]
schedule = "0 3 * * *"
[jobs.music.source]
type = "csv"
path = "{state}/music.csv"
[jobs.music.target]
type = "sql"
key = ["external_id"]
[jobs.music.mapping]
external_id = "id"
title = "song_name"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(text.replace("{state}", str(tmp_path / "state")))
    return path


def test_every_key_has_a_default():
    config = validate({})
    assert config.daemon.max_concurrent_runs == 4
    assert config.daemon.state_dir == Path("/var/lib/syncd")
    assert config.api.listen == "127.0.0.1:8765"
    assert config.jobs == {}


def test_the_example_config_is_valid():
    result = syncd("check-config", "--config", "etc/syncd/syncd.toml")
    assert result.returncode == 0, result.stderr
    assert "job music: csv -> sql" in result.stdout


def test_check_config_lists_jobs_and_their_triggers(tmp_path):
    result = syncd("check-config", "--config", str(write(tmp_path, MUSIC)))
    assert result.returncode == 0, result.stderr
    assert "job music: csv -> sql; triggers: cli; api; schedule '0 3 * * *'" in result.stdout


@pytest.mark.parametrize("change,key,says", [
    (("[jobs.music]", "[jobs.music]\nschedul = \"x\""), "jobs.music.schedul",
     "unknown key; allowed: schedule, every"),
    (('log_format = "json"', 'log_format = "loud"'), "daemon.log_format",
     "'auto', 'json' or 'console'"),
    (('schedule = "0 3 * * *"', 'schedule = "99 3 * * *"'), "jobs.music.schedule",
     "bad cron expression"),
    (('path = ', 'delimitr = ";"\npath = '), "jobs.music.source.delimitr",
     "unknown key; allowed: path, delimiter"),
    (('type = "sql"', 'type = "sqll"'), "jobs.music.target.type", "unknown target type"),
    (('key = ["external_id"]', 'key = ["nope"]'), "jobs.music.target.key",
     "nope not in jobs.music.mapping"),
    (("[jobs.music]", "[jobs.music]\ndepends_on = [\"ghost\"]"), "jobs.music.depends_on",
     "unknown job 'ghost'"),
    (("[daemon]", "[daemon\n"), "", "not valid TOML"),
])
def test_a_bad_config_is_one_line_naming_file_and_key(tmp_path, change, key, says):
    path = write(tmp_path, MUSIC.replace(*change, 1))
    for command in (["check-config"], ["sync", "music"]):
        result = syncd(*command, "--config", str(path))
        assert result.returncode == 2
        first = result.stderr.splitlines()[0]
        assert first.startswith(f"syncd: error: {path}: {key + ': ' if key else ''}"), first
        assert says in result.stderr
        assert "Traceback" not in result.stderr


def test_a_dependency_cycle_names_the_jobs(tmp_path):
    text = MUSIC + "\n".join(
        f'[jobs.{a}]\ndepends_on = ["{b}"]\n[jobs.{a}.mapping]\nexternal_id = "id"\n'
        for a, b in (("a", "b"), ("b", "c"), ("c", "a")))
    with pytest.raises(ConfigError, match=r"cycle: (a → b → c → a|b → c → a → b|c → a → b → c)"):
        load_config(write(tmp_path, text))


def test_a_config_saved_with_a_byte_order_mark_and_crlf_is_read(tmp_path):
    """As Windows Notepad saves it: the mark is no TOML, so it is dropped before parsing."""
    path = write(tmp_path, MUSIC)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert list(load_config(path).jobs) == ["music"]


def test_missing_config_file_says_how_to_point_at_one(tmp_path):
    result = syncd("check-config", env={"SYNCD_CONFIG": str(tmp_path / "none.toml")})
    assert result.returncode == 2
    assert "none.toml: no such file (use --config or $SYNCD_CONFIG)" in result.stderr


def test_secrets_come_from_env_file_and_credentials(tmp_path, monkeypatch):
    (tmp_path / "token").write_text("from-file\n")
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "api").write_text("from-credential")
    monkeypatch.setenv("SYNCD_TEST_SECRET", "from-env")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    assert Secret(file=tmp_path / "token").reveal() == "from-file"
    assert Secret(env="SYNCD_TEST_SECRET").reveal() == "from-env"
    assert Secret(credential="api").reveal() == "from-credential"
    assert "from" not in repr(Secret(env="SYNCD_TEST_SECRET"))
    with pytest.raises(ValueError, match="exactly one"):
        Secret(env="A", file=tmp_path)


def test_a_secret_database_url_never_reaches_the_logs(tmp_path):
    url = "postgresql://syncd:hunter2@127.0.0.1:1/none"
    (tmp_path / "db").write_text(url)
    text = MUSIC.replace('log_format = "json"',
                         f'log_format = "json"\ndatabase = {{ file = "{tmp_path / "db"}" }}')
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "music.csv").write_text("id,song_name\n1,a\n")
    result = syncd("sync", "music", "--config", str(write(tmp_path, text)), timeout=60)
    assert result.returncode != 0
    assert "hunter2" not in result.stdout + result.stderr
    check = syncd("check-config", "--config", str(tmp_path / "syncd.toml"))
    assert "hunter2" not in check.stdout and "<secret>" in check.stdout


def test_log_redaction_blanks_secret_values_and_url_passwords():
    from syncd.logs import redact

    Secret(env="PATH").reveal()  # any revealed value is blanked wherever it appears
    import os

    event = redact(None, "info", {"event": f"x {os.environ['PATH']} y",
                                  "url": "mysql://u:pw@h/db", "api_token": "abc"})
    assert event == {"event": "x *** y", "url": "mysql://u:***@h/db", "api_token": "***"}
    json.dumps(event)


def test_an_unreachable_database_is_one_line_with_a_hint(tmp_path):
    config = tmp_path / "syncd.toml"
    config.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n'
                      'database = "postgresql://syncd:pw@127.0.0.1:1/none"\n')
    result = syncd("sync", "--all", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith("syncd: error: cannot connect to the database")
    assert "hint: check [daemon].database" in result.stderr
    assert "Traceback" not in result.stderr and ":pw@" not in result.stderr
