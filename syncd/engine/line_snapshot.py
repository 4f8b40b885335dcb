"""What a run leaves so that the next reads only the lines that changed: a digest of
each line of its file (``Source.line_digests``) and of the key each line wrote.

Three files in ``state_dir/lines/``: ``<job>.json`` names the run that left them and
the two arrays of 64-bit digests, one entry per line: ``<job>-<token>.lines`` (the
line's bytes) and ``<job>-<token>.keys`` (the key its record wrote; 0 for a line that
wrote nothing: blank, refused, a repeated key, which the next run reads again). They
are a cache: written after the run's last transaction, checked by CRC when read, and
taken only when they name the job's last completed run, so a missing, torn or stale
one only means the next run reads its file whole. The files of a job removed from
the config go with the cleanup (``left_by_others``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zlib
from array import array
from collections.abc import Collection, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from syncd.adapters import Row, WriteResult, digests64

VERSION = 1
BLOCK = 65536  # digests read or written at a time
WIDTH = array("Q").itemsize
TOKEN_HEX = 16  # a run's files are told apart by a random token of this many hex digits


def key_digests(rows: Sequence[Row], positions: Sequence[int]) -> array:
    """Each row's key (at ``positions``) as a 64-bit digest (``digests64``) of its text
    (the fields joined by US), as the source's row has it."""
    if len(positions) == 1:
        keys: list[Any] = list(map(itemgetter(positions[0]), rows))
    else:
        keys = ["\x1f".join(map(str, key)) for key in map(itemgetter(*positions), rows)]
    try:
        texts = list(map(str.encode, keys))  # (text keys: the usual case)
    except (TypeError, UnicodeEncodeError):
        texts = [str(key).encode("utf-8", "surrogatepass") for key in keys]
    return digests64(texts)


def line_numbers(items: Sequence[str]) -> list[int] | None:
    """The line of each item (``"line N"``), or None when one is not a line."""
    try:
        return [int(item[5:]) for item in items if item[:5] == "line "] or None
    except ValueError:
        return None


class KeyBlocks:
    """The key digests of a run's rows by line, a batch at a time (picklable, for a
    reader process to take it over): a block of digests for the lines from the last
    batch's end to this one's last row, 0 where a line gave no row."""

    def __init__(self, first_line: int, positions: Sequence[int]) -> None:
        self.first_line, self.positions = first_line, list(positions)

    def __call__(self, rows: Sequence[Row], items: Sequence[str]) -> tuple[int, array] | None:
        """(position of the block's first line, the block), for rows in file order;
        None when an item is not a line."""
        if not rows:
            return None
        first = last = None
        if items[0][:5] == "line " and items[-1][:5] == "line ":
            with contextlib.suppress(ValueError):
                first, last = int(items[0][5:]), int(items[-1][5:])
        if first is None or last is None or len(items) != len(rows):
            return None
        digests = key_digests(rows, self.positions)
        if last - first + 1 == len(rows):  # one row a line (lines are told in order)
            return first - self.first_line, digests
        lines = line_numbers(items)
        if lines is None or len(lines) != len(rows) or min(lines) < first:
            return None
        block = array("Q", bytes((max(lines) - first + 1) * WIDTH))
        for line, digest in zip(lines, digests, strict=True):
            block[line - first] = digest
        return first - self.first_line, block


def folder(state_dir: Path) -> Path:
    return state_dir / "lines"


def left_by_others(state_dir: Path, jobs: Collection[str]) -> dict[str, list[Path]]:
    """The snapshot files of jobs not in ``jobs`` (gone from the config), by job: what
    the cleanup removes (nothing else ever would)."""
    found: dict[str, list[Path]] = {}
    with contextlib.suppress(OSError):  # no folder: no snapshot
        for path in folder(state_dir).iterdir():
            job = _job_of(path.name)
            if job is not None and job not in jobs and path.is_file() \
                    and not path.is_symlink():  # (only what a run wrote)
                found.setdefault(job, []).append(path)
    return found


def _job_of(name: str) -> str | None:
    """The job a file of the folder belongs to, by its name (see the module's doc)."""
    if name.startswith(".") and name.endswith(".json.tmp"):
        return name[1:-len(".json.tmp")] or None
    if name.endswith(".json"):
        return name[:-len(".json")] or None
    stem, _, kind = name.rpartition(".")
    token = stem[-TOKEN_HEX:]
    if kind in ("lines", "keys") and stem[-TOKEN_HEX - 1:-TOKEN_HEX] == "-" \
            and all(c in "0123456789abcdef" for c in token):
        return stem[:-TOKEN_HEX - 1] or None
    return None


class Snapshot:
    """The files a completed run left, as its ``<job>.json`` describes them."""

    def __init__(self, directory: Path, job: str, meta: dict[str, Any]) -> None:
        self.directory, self.job, self.meta = directory, job, meta
        self.count: int = meta["count"]

    @classmethod
    def load(cls, state_dir: Path, job: str) -> Snapshot | None:
        try:
            meta = json.loads((folder(state_dir) / f"{job}.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("version") != VERSION:
            return None
        return cls(folder(state_dir), job, meta)

    def path(self, kind: str) -> Path:
        return self.directory / f"{self.job}-{self.meta['token']}.{kind}"

    def blocks(self, kind: str) -> Iterator[array]:
        """The ``lines`` or ``keys`` digests, ``BLOCK`` at a time; ``Torn`` when the file
        is not what the run left (checked once it is read to its end)."""
        crc, read = 0, 0
        with open(self.path(kind), "rb") as f:
            while chunk := f.read(BLOCK * WIDTH):
                crc, read = zlib.crc32(chunk, crc), read + len(chunk)
                block = array("Q")
                block.frombytes(chunk[:len(chunk) - len(chunk) % WIDTH])
                yield block
        if crc != self.meta[f"{kind}_crc"] or read != self.count * WIDTH:
            raise Torn(f"{self.path(kind)} is not as its run left it")

    def carry(self, run_id: int) -> None:
        """Name ``run_id`` as the run that left these files (it read the same content)."""
        _write_meta(self.directory, self.job, {**self.meta, "run": run_id})


class Torn(Exception):
    """A snapshot file that was cut or changed since its run wrote it."""


class SnapshotWriter:
    """Writes a run's snapshot as it goes, for ``keep`` to name once the run completed."""

    def __init__(self, state_dir: Path, job: str, meta: dict[str, Any]) -> None:
        self.directory, self.job = folder(state_dir), job
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.meta = {**meta, "version": VERSION, "token": secrets.token_hex(TOKEN_HEX // 2)}
        self.count = 0  # lines written
        self._lines = self._open("lines")
        self._keys = self._open("keys")
        self._crc = {"lines": 0, "keys": 0}
        self.keys = 0  # key digests written
        self.failed: OSError | None = None  # why a write failed

    def _open(self, kind: str) -> IO[bytes]:
        path = self.directory / f"{self.job}-{self.meta['token']}.{kind}"
        return open(path, "wb")

    def line_block(self, block: array) -> None:
        self._add("lines", self._lines, block)
        self.count += len(block)

    def key_block(self, block: array) -> None:
        self._add("keys", self._keys, block)
        self.keys += len(block)

    def _add(self, kind: str, f: IO[bytes], block: array) -> None:
        """Write a block; a disk that fails or fills fails the snapshot, not the run."""
        if self.failed is not None:
            return
        data = block.tobytes()
        try:
            f.write(data)
        except OSError as exc:
            self.failed = exc
        self._crc[kind] = zlib.crc32(data, self._crc[kind])

    def keep(self, run_id: int) -> None:
        """Name the arrays, and the run that left them, in ``<job>.json``."""
        self._lines.close()
        self._keys.close()
        if self.failed is not None:
            raise self.failed
        if self.keys != self.count:
            raise Torn(f"{self.keys} key digests for {self.count} lines")
        _write_meta(self.directory, self.job, {
            **self.meta, "run": run_id, "count": self.count,
            "lines_crc": self._crc["lines"], "keys_crc": self._crc["keys"]})
        self._remove_others()

    def discard(self) -> None:
        for f in (self._lines, self._keys):
            with contextlib.suppress(OSError):  # (a full disk fails the flush)
                f.close()
        for kind in ("lines", "keys"):
            with contextlib.suppress(OSError):
                (self.directory / f"{self.job}-{self.meta['token']}.{kind}").unlink()

    def _remove_others(self) -> None:
        """Earlier runs' files of the job (each run writes its own)."""
        mine = {f"{self.job}-{self.meta['token']}.{kind}" for kind in ("lines", "keys")}
        for path in self.directory.glob(f"{self.job}-*.*"):
            token = path.name[len(self.job) + 1:].split(".")[0]
            if path.name not in mine and len(token) == TOKEN_HEX:
                with contextlib.suppress(OSError):
                    path.unlink()


def _write_meta(directory: Path, job: str, meta: dict[str, Any]) -> None:
    """``<job>.json``, replaced whole (its arrays are on disk before it names them)."""
    tmp = directory / f".{job}.json.tmp"
    with open(tmp, "w") as f:
        json.dump(meta, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / f"{job}.json")


def good_rows(rows: Sequence[Row], items: Sequence[str], result: WriteResult
              ) -> tuple[Sequence[Row], Sequence[str]]:
    """The rows a write took as they are (none when it skipped any: which is not told)."""
    if result.skipped:
        return [], []
    refused = {e.item for e in result.errors}
    if not refused:
        return rows, items
    kept = [i for i, item in enumerate(items) if item not in refused]
    return [rows[i] for i in kept], [items[i] for i in kept]


def fixed_blocks(blocks: Iterator[Any], count: int | None) -> Iterator[Any]:
    """``blocks`` of digests cut again into ``BLOCK``-long arrays (as a snapshot's are);
    with ``count``, cut or padded with zeros to ``count`` in all. A ``None`` block is
    passed on."""
    buffer, total = array("Q"), 0
    for block in blocks:
        if block is None:
            yield None
            return
        buffer.extend(block)
        while len(buffer) >= BLOCK:
            out = buffer[:BLOCK]
            del buffer[:BLOCK]
            if count is not None:
                out = out[:max(0, count - total)]
            total += len(out)
            if out:
                yield out
    if count is not None:
        buffer = buffer[:max(0, count - total)]
    if buffer:
        total += len(buffer)
        yield buffer
    if count is not None and total < count:
        yield from zeros(count - total)


def zeros(count: int) -> Iterator[array]:
    for start in range(0, count, BLOCK):
        yield array("Q", bytes(min(BLOCK, count - start) * 8))
