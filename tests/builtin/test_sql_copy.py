"""COPY (PostgreSQL) and multi-row VALUES (MySQL) texts: the fast paths agree with
escaping each value on its own."""

from __future__ import annotations

import random
from datetime import datetime

import pytest
from pymysql import converters
from pymysql.connections import Connection as MySQLConnection
from pymysql.constants import SERVER_STATUS

from syncd_builtin.sql_copy import copy_insert, copy_text
from syncd_builtin.sql_mysql import row_texts

PLAIN = ["title", "", "ünï 🎵", None, True, False, 1950, 2.5, datetime(2026, 11, 29, 19)]
TRICKY = ["tab\there", "new\nline", "cr\rlf", "back\\slash", "\\N", "a\tb\\c"]


def escaped(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    text = str(value)
    for raw, esc in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        text = text.replace(raw, esc)
    return text


@pytest.mark.parametrize("tricky", [False, True])
def test_copy_text_is_each_value_escaped_tab_separated_one_line_a_row(tricky: bool) -> None:
    rng = random.Random(7)
    values = PLAIN + (TRICKY if tricky else [])
    rows = [tuple(rng.choice(values) for _ in range(5)) for _ in range(300)]
    if tricky:
        rows.append(("plain", "\\N", None, "x", "y"))  # a literal \N beside a NULL
    expected = "".join("\t".join(escaped(v) for v in row) + "\n" for row in rows)
    assert copy_text(rows) == expected
    assert copy_text([]) == ""


@pytest.mark.parametrize("tricky", [False, True])
def test_values_shared_by_every_row_are_rendered_once_as_if_each_row_held_them(
        tricky: bool) -> None:
    rng = random.Random(5)
    values = PLAIN + (TRICKY if tricky else [])
    rows = [tuple(rng.choice(values) for _ in range(3)) for _ in range(200)]
    shared = (True, None, "C:\\drive\tpath\n", datetime(2026, 11, 29, 23))
    assert copy_text(rows, shared) == copy_text([row + shared for row in rows])
    assert copy_text([], shared) == ""
    conn = Escaper(0)
    assert row_texts(conn, rows, shared) == row_texts(conn, [row + shared for row in rows])
    assert row_texts(conn, rows, ("a\x01b",)) is None


class Escaper:
    """pymysql's own escaping, which needs no server."""

    encoders = converters.encoders
    encoding = "utf8mb4"
    escape = MySQLConnection.escape
    _escape_string = MySQLConnection._escape_string

    def __init__(self, server_status: int) -> None:
        self.server_status = server_status


@pytest.mark.parametrize("status", [0, SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES])
@pytest.mark.parametrize("tricky", [False, True])
def test_mysql_row_texts_escape_as_pymysql_does(tricky: bool, status: int) -> None:
    rng = random.Random(11)
    values = [*PLAIN, 1, 0, "Don't", 'say "hi"', "nul\0byte", "ctrl\x1az"] + (
        TRICKY if tricky else [])
    rows = [tuple(rng.choice(values) for _ in range(6)) for _ in range(300)]
    conn = Escaper(status)
    expected = ["(" + ",".join(conn.escape(v) for v in row) + ")" for row in rows]
    assert row_texts(conn, rows) == expected
    assert row_texts(conn, [("a\x01b",)]) is None  # holds the separator: pymysql's way
    texts = [v for v in values if isinstance(v, str)]
    rows = [tuple(rng.choice(texts) for _ in range(4)) for _ in range(300)]  # as from CSV
    for text_rows in (rows, [*rows, ("row\x02separator", "", "x", "y")]):
        assert row_texts(conn, text_rows) == [
            "(" + ",".join(conn.escape(v) for v in row) + ")" for row in text_rows]


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_copy_of_rows_one_of_which_another_writer_added_updates_that_one(store) -> None:
    db = store.db
    db.execute_sql('CREATE TABLE t (id SERIAL PRIMARY KEY, k TEXT UNIQUE, v TEXT)')
    db.execute_sql("INSERT INTO t (k, v) VALUES ('k1', 'old')")  # since the lookup
    with db.atomic():
        copy_insert(db.cursor(), "t", "k, v", "ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                    [("k0", "a"), ("k1", "b\tc"), ("k2", None)])
    assert db.execute_sql("SELECT k, v FROM t ORDER BY k").fetchall() == [
        ("k0", "a"), ("k1", "b\tc"), ("k2", None)]
    with db.atomic():  # all new: straight into the table
        copy_insert(db.cursor(), "t", "k, v", "ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                    [("k3", "d")])
    assert db.execute_sql("SELECT COUNT(*) FROM t").fetchone() == (4,)
