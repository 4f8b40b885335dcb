"""The email target (SPEC §9) against a real SMTP server (aiosmtpd on 127.0.0.1).

A digest per run or a message per record, text and HTML parts; a change is mailed
once; a server that is down leaves the records pending and fails the run retryably,
and the next run mails them once; STARTTLS with a certificate the client verifies;
the password reaches no log line, run record or message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import structlog

from syncd.adapters import TargetSchema
from syncd.errors import AuthError, ConfigError
from syncd.store import Store
from syncd.store.models import IdMap
from syncd.testing import make_engine, run_job
from syncd.testing.contracts.base import context
from syncd_builtin.email_target import EmailTarget
from tests.fakes.smtp import USER, SmtpServer, free_port, self_signed, tls_context

PASSWORD = "smtp-secret-Hq72x"
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

RECORDS = [{"date": "2026-12-01", "status": "blocked", "note": "Dreh <Berlin>"},
           {"date": "2026-12-02", "status": "blocked", "note": ""},
           {"date": "2026-12-05", "status": "option", "note": "Casting"}]


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_SMTP_PASS", PASSWORD)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(PASSWORD).start()
    yield server
    server.stop()


def target(port: int, **extra: Any) -> dict[str, Any]:
    return {"type": "email", "smtp": f"smtp://127.0.0.1:{port}", "username": USER,
            "password": {"env": "SYNCD_TEST_SMTP_PASS"}, "from": "syncd@example.test",
            "to": ["booking@agentur-iris.test"], "key": ["date"],
            "subject": "Availability update: {count} changes", **extra}


def export(store: Store, tmp_path: Path, records: list[dict[str, Any]],
           target_options: dict[str, Any], **job: Any) -> Any:
    engine = make_engine(store, tmp_path / "state", {"iris": {
        "source": {"type": "memory", "records": records},
        "mapping": {"date": "date", "status": "status", "note": "note"},
        "retry": {"attempts": 1}, "target": target_options, **job}},
        adapters=[EmailTarget])
    run, _ = run_job(engine, "iris")
    return run


def parts(message: Message) -> tuple[str, str]:
    text = html = ""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_payload(decode=True).decode().replace("\r\n", "\n")
        elif part.get_content_type() == "text/html":
            html = part.get_payload(decode=True).decode().replace("\r\n", "\n")
    return text, html


def id_map() -> dict[str, tuple[str, str | None]]:
    return {r.local_key: (r.state, r.remote_id) for r in IdMap.select()}


def test_a_digest_mails_each_change_once(store: Store, tmp_path: Path,
                                         smtp: SmtpServer) -> None:
    run = export(store, tmp_path, RECORDS, target(smtp.port), on_missing="delete")
    assert run.status == "completed", run.error_message
    [mail] = smtp.messages
    assert mail["Subject"] == "Availability update: 3 changes"
    assert mail["To"] == "booking@agentur-iris.test"
    text, html = parts(mail)
    assert "New (3):" in text and "2026-12-05: date = 2026-12-05; status = option" in text
    assert "Dreh <Berlin>" in text  # text is not escaped…
    assert "Dreh &lt;Berlin&gt;" in html and "<Berlin>" not in html  # …HTML is
    assert {state for state, _ in id_map().values()} == {"synced"}
    assert {remote for _, remote in id_map().values()} == {mail["Message-ID"]}

    run = export(store, tmp_path, RECORDS, target(smtp.port), on_missing="delete")
    assert (run.status, run.items_unchanged) == ("completed", 3)
    assert len(smtp.messages) == 1  # nothing changed: nothing sent

    changed = [{**RECORDS[0], "status": "option"}, RECORDS[2],
               {"date": "2026-12-24", "status": "blocked", "note": "Heiligabend"}]
    run = export(store, tmp_path, changed, target(smtp.port), on_missing="delete",
                 max_missing=5)
    assert run.status == "completed", run.error_message
    assert (run.items_inserted, run.items_updated, run.items_missing) == (1, 1, 1)
    assert len(smtp.messages) == 2
    text, _ = parts(smtp.messages[1])
    assert smtp.messages[1]["Subject"] == "Availability update: 3 changes"
    assert "New (1):\n- 2026-12-24" in text
    assert "Changed (1):\n- 2026-12-01: date = 2026-12-01; status = option" in text
    assert "Removed (1):\n- 2026-12-02: date = 2026-12-02; status = blocked" in text
    assert id_map()["2026-12-02"][0] == "deleted"

    export(store, tmp_path, changed, target(smtp.port), on_missing="delete")
    assert len(smtp.messages) == 2  # each change was mailed once


def test_per_record_mode_sends_a_message_per_change(store: Store, tmp_path: Path,
                                                    smtp: SmtpServer) -> None:
    options = target(smtp.port, mode="per_record", subject="{change}: {date} {status}")
    run = export(store, tmp_path, RECORDS, options)
    assert (run.status, run.items_inserted) == ("completed", 3)
    assert sorted(m["Subject"] for m in smtp.messages) == [
        "new: 2026-12-01 blocked", "new: 2026-12-02 blocked", "new: 2026-12-05 option"]
    assert len({m["Message-ID"] for m in smtp.messages}) == 3

    records = [RECORDS[0], {**RECORDS[1], "status": "free"}, RECORDS[2]]
    run = export(store, tmp_path, records, options)
    assert (run.items_updated, run.items_unchanged) == (1, 2)
    assert [m["Subject"] for m in smtp.messages[3:]] == ["changed: 2026-12-02 free"]
    export(store, tmp_path, records, options)
    assert len(smtp.messages) == 4


@pytest.mark.parametrize("mode", ["digest", "per_record"])
def test_a_down_server_leaves_records_pending_for_the_next_run(
        store: Store, tmp_path: Path, mode: str) -> None:
    port = free_port()  # nobody listens there yet
    with structlog.testing.capture_logs() as logs:
        run = export(store, tmp_path, RECORDS, target(port, mode=mode))
    assert run.status == "failed"
    [error] = [e for e in store.errors_of(run.id) if not e.item_identifier]
    assert (error.error_type, error.is_retryable) == ("network", True)
    assert f"127.0.0.1:{port}" in error.error_message
    assert {state for state, _ in id_map().values()} == {"pending"}
    assert PASSWORD not in json.dumps(logs, default=str) + (run.error_message or "")

    server = SmtpServer(PASSWORD, port=port).start()
    try:
        run = export(store, tmp_path, RECORDS, target(port, mode=mode))
        assert run.status == "completed", run.error_message
        assert len(server.messages) == (1 if mode == "digest" else 3)
        assert {state for state, _ in id_map().values()} == {"synced"}
        export(store, tmp_path, RECORDS, target(port, mode=mode))
        assert len(server.messages) == (1 if mode == "digest" else 3)  # sent exactly once
        body = "".join(m.as_string() for m in server.messages)
        assert PASSWORD not in body
    finally:
        server.stop()


def test_starttls_with_a_verified_certificate(store: Store, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this server only
    server = SmtpServer(PASSWORD, tls=tls_context(cert, key)).start()
    try:
        run = export(store, tmp_path, RECORDS, target(server.port, starttls=True))
        assert run.status == "completed", run.error_message
        assert len(server.messages) == 1 and server.handler.tls == [True]
    finally:
        server.stop()


def test_an_untrusted_certificate_fails_the_run(store: Store, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = SmtpServer(PASSWORD, tls=tls_context(cert, key)).start()
    try:
        run = export(store, tmp_path, RECORDS, target(server.port, starttls=True))
        assert run.status == "failed" and "TLS" in (run.error_message or "")
        assert server.messages == []
    finally:
        server.stop()


def test_a_refused_login_names_no_secret(store: Store, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         smtp: SmtpServer) -> None:
    monkeypatch.setenv("SYNCD_TEST_SMTP_PASS", "wrong-" + PASSWORD)
    with structlog.testing.capture_logs() as logs:
        run = export(store, tmp_path, RECORDS, target(smtp.port))
    assert run.status == "failed" and "refused the login" in (run.error_message or "")
    stored = json.dumps([e.error_message for e in store.errors_of(run.id)])
    assert PASSWORD not in json.dumps(logs, default=str) + stored + (run.error_message or "")
    assert smtp.messages == []


def test_a_user_template_renders_both_parts(store: Store, tmp_path: Path,
                                            smtp: SmtpServer) -> None:
    template = tmp_path / "iris.j2"
    template.write_text(
        "{% block text %}{% for c in changes %}{{ c.fields.date }} {{ c.fields.note }}\n"
        "{% endfor %}{% endblock %}"
        "{% block html %}<ul>{% for c in changes %}<li>{{ c.fields.note }}</li>"
        "{% endfor %}</ul>{% endblock %}", encoding="utf-8")
    run = export(store, tmp_path, RECORDS[:1], target(smtp.port, template=str(template)))
    assert run.status == "completed", run.error_message
    text, html = parts(smtp.messages[0])
    assert text == "2026-12-01 Dreh <Berlin>\n"
    assert html.strip() == "<ul><li>Dreh &lt;Berlin&gt;</li></ul>"


@pytest.mark.parametrize(("key", "value", "said"), [
    ("smtp", "http://mail.example.test", "expected smtp://"),
    ("smtp", "smtp://user:pw@mail.example.test", "no login in the URL"),
    ("template", "/nonexistent/iris.j2", "cannot read /nonexistent/iris.j2"),
    ("subject", "update {count", "braces"),
])
def test_config_errors_name_the_key(store: Store, tmp_path: Path, key: str, value: str,
                                    said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        export(store, tmp_path, RECORDS, {**target(25), key: value})
    assert f"jobs.iris.target.{key}" in str(caught.value) and said in str(caught.value)


def test_a_template_without_a_text_block_is_refused(store: Store, tmp_path: Path) -> None:
    template = tmp_path / "bad.j2"
    template.write_text("{% block html %}<p>{{ count }}</p>{% endblock %}", encoding="utf-8")
    with pytest.raises(ConfigError, match="block text"):
        export(store, tmp_path, RECORDS, target(25, template=str(template)))


def test_check_logs_in_and_sends_nothing(tmp_path: Path, smtp: SmtpServer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    options = {k: v for k, v in target(smtp.port).items() if k != "type"}
    schema = TargetSchema("iris", ("date",), ("date",), {}, "memory", "memory")
    said = asyncio.run(EmailTarget(EmailTarget.Options.model_validate(options)).check(
        schema, context(tmp_path)))
    assert said == f"smtp://127.0.0.1:{smtp.port}: connected (plain, logged in)"
    assert smtp.messages == []
    monkeypatch.setenv("SYNCD_TEST_SMTP_PASS", "wrong")
    with pytest.raises(AuthError, match="refused the login"):
        asyncio.run(EmailTarget(EmailTarget.Options.model_validate(options)).check(
            schema, context(tmp_path)))
