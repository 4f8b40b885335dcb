"""The file target (SPEC §9): one CSV, JSON or NDJSON file per run, renamed into place
when the run completes; readers never see a partial file; no temporary file survives a
failed run; CSV cells that a spreadsheet would run as formulas are escaped."""

from __future__ import annotations

import csv
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from syncd.errors import ConfigError
from syncd.store import Store
from syncd.testing import make_engine, run_job
from syncd_builtin.file_target import FileTarget, escape


def records(count: int, name: str = "item") -> list[dict[str, Any]]:
    return [{"id": str(i), "name": f"{name} {i}", "price": i * 1.5} for i in range(count)]


def export(store: Store, tmp_path: Path, rows: list[dict[str, Any]], path: str,
           fmt: str = "csv", **job: Any) -> Any:
    engine = make_engine(store, tmp_path / "state", {"catalog": {
        "source": {"type": "memory", "records": rows, **job.pop("source", {})},
        "mapping": {"id": "id", "name": "name", "price": "price"},
        "retry": {"attempts": 1}, **job,
        "target": {"type": "file", "path": path, "format": fmt}}}, adapters=[FileTarget])
    run, _ = run_job(engine, "catalog")
    return run


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_csv_with_the_run_date_and_formula_escaping(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = [{"id": "1", "name": "=HYPERLINK(\"http://evil\")", "price": -3},
            {"id": "2", "name": "+49 30 1234", "price": 2},
            {"id": "3", "name": "@SUM(A1)", "price": 0},
            {"id": "4", "name": "\tTab", "price": 1},
            {"id": "5", "name": "\rCR", "price": 1},
            {"id": "6", "name": "Plain, with \"quotes\"\nand a newline", "price": 1}]
    run = export(store, tmp_path, rows, str(out / "catalog-{date}-{run}.csv"))
    assert run.status == "completed", run.error_message
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    final = out / f"catalog-{today}-{run.id}.csv"
    with final.open(newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == ["id", "name", "price"]
    assert [r[1] for r in table[1:]] == [
        "'=HYPERLINK(\"http://evil\")", "'+49 30 1234", "'@SUM(A1)", "'\tTab", "'\rCR",
        "Plain, with \"quotes\"\nand a newline"]
    assert table[1][2] == "'-3" and table[2][2] == "2"
    assert leftovers(out) == [] and run.items_inserted == 6


def test_escape() -> None:
    assert [escape(v) for v in ("=1", "-", "a=b", "", None, 5, -5)] == [
        "'=1", "'-", "a=b", "", "", "5", "'-5"]


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_json_and_ndjson_are_well_formed(store: Store, tmp_path: Path, fmt: str) -> None:
    final = tmp_path / f"catalog.{fmt}"
    for count in (0, 1, 250):
        run = export(store, tmp_path, records(count), str(final), fmt, batch_rows=100)
        assert run.status == "completed", run.error_message
        text = final.read_text(encoding="utf-8")
        loaded = (json.loads(text) if fmt == "json"
                  else [json.loads(line) for line in text.splitlines()])
        assert loaded == records(count)
    assert leftovers(tmp_path) == []


def test_readers_never_see_a_partial_file(store: Store, tmp_path: Path) -> None:
    final = tmp_path / "catalog.json"
    export(store, tmp_path, records(10, "old"), str(final), "json")
    stop, seen, torn, temps = threading.Event(), [], [], []

    def read() -> None:
        while not stop.is_set():
            try:
                loaded = json.loads(final.read_bytes())
            except ValueError:
                torn.append(1)
                continue
            seen.append(len(loaded))
            temps.append(bool(leftovers(tmp_path)))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        run = export(store, tmp_path, records(30_000, "new"), str(final), "json",
                     batch_rows=500)
    finally:
        stop.set()
        reader.join()
    assert run.status == "completed", run.error_message
    assert torn == [], f"{len(torn)} reads of a partial file"
    assert set(seen) <= {10, 30_000} and 10 in seen
    assert any(temps), "the reader never ran while the file was being written"
    assert len(json.loads(final.read_bytes())) == 30_000 and leftovers(tmp_path) == []


def test_a_failed_run_leaves_no_file(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = export(store, tmp_path, records(500), str(out / "catalog.csv"), batch_rows=100,
                 source={"fail_at": {"350": 1}})
    assert run.status == "failed"
    assert not (out / "catalog.csv").exists() and leftovers(out) == []


def test_a_failed_run_keeps_the_previous_file(store: Store, tmp_path: Path) -> None:
    final = tmp_path / "catalog.ndjson"
    export(store, tmp_path, records(5), str(final), "ndjson")
    before = final.read_bytes()
    run = export(store, tmp_path, records(500), str(final), "ndjson", batch_rows=100,
                 source={"fail_at": {"350": 1}})
    assert run.status == "failed" and final.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_an_interrupted_run_starts_over_and_writes_each_record_once(
        store: Store, tmp_path: Path) -> None:
    """The first attempt fails after batches were committed; the retry does not go on
    from the checkpoint but from the first record (the file is written whole)."""
    final = tmp_path / "catalog.ndjson"
    run = export(store, tmp_path, records(500), str(final), "ndjson", batch_rows=100,
                 source={"fail_at": {"350": 1}},
                 retry={"attempts": 2, "initial_s": 0.01, "max_s": 0.02})
    assert run.status == "completed", run.error_message
    ids = [json.loads(line)["id"] for line in final.read_text().splitlines()]
    assert ids == [str(i) for i in range(500)]
    assert run.items_inserted == 500 and leftovers(tmp_path) == []


def test_a_dry_run_writes_nothing(store: Store, tmp_path: Path) -> None:
    engine = make_engine(store, tmp_path / "state", {"catalog": {
        "source": {"type": "memory", "records": records(3)},
        "mapping": {"id": "id", "name": "name"},
        "target": {"type": "file", "path": str(tmp_path / "out" / "c.csv")}}},
        adapters=[FileTarget])
    _, outcome = run_job(engine, "catalog", dry_run=True)
    assert outcome.status == "completed" and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("path", "said"), [
    ("/srv/out/catalog-{day}.csv", "unknown placeholder {day}"),
    ("/srv/out/catalog-{date.csv", "braces"),
    ("/srv/out/", "the path of a file"),
])
def test_a_bad_path_names_the_key(store: Store, tmp_path: Path, path: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        export(store, tmp_path, records(1), path)
    assert "jobs.catalog.target.path" in str(caught.value) and said in str(caught.value)
