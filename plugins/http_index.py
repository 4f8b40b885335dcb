"""The ``http_index`` source: a file server's folders over HTTP, one record a file.

Seed 004's media library is fed from file servers whose folders are listed by the
web server itself: nginx ``autoindex`` (JSON, XML or HTML), Apache ``mod_autoindex``
or lighttpd ``dir-listing``. This source walks such listings from a start folder
down to ``depth`` and yields what the ``inventory`` source yields for a disk, plus
the file's URL: ``url, path, name, extension, size, modified_at`` and the guesses
(``mime``, ``media_type``, ``title``, ``artist``, ``album``). With
``check_available`` each file URL is asked with HEAD and ``is_available`` follows.

Every request goes through ``ctx.client``: the remote's rate limit (shared with
every job and run naming it), concurrency, retries and ``Retry-After``. The
checkpoint is the last path committed (``inventory``'s scheme): a resumed run lists
no folder whose files were all committed. A read to the end is complete, so
``on_missing`` marks files gone from the server; a folder that could not be listed
is an item error, and then the engine leaves missing records alone for that run.

Parsing is in ``http_index_parse``, the walk in ``http_index_walk``, HEAD answers
and their cache in ``http_index_cache``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from pydantic import BeforeValidator, Field, field_validator, model_validator

from syncd.adapters import (
    AsyncSource,
    Batch,
    Checkpoint,
    ItemError,
    Row,
    RunContext,
    SourceCapabilities,
    glob_matcher,
    glob_regex,
)
from syncd.adapters import Options as AdapterOptions
from syncd.errors import JobError, SourceError

from .http_index_cache import AvailabilityCache
from .http_index_walk import PCHAR, FileEntry, FormatOption, Unlisted, Walker
from .inventory_names import file_record
from .inventory_walk import Entry

if TYPE_CHECKING:
    from syncd.remote.http import HttpClient

__all__ = ["FIELDS", "HttpIndexSource"]

FIELDS = ("url", "path", "name", "extension", "size", "modified_at", "mime", "media_type",
          "title", "artist", "album", "is_available")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def seconds(value: Any) -> float:
    """``300``, ``"30s"``, ``"5m"``, ``"2h"`` or ``"1d"`` as seconds (0: no cache)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = DURATION.match(str(value))
    if not match:
        raise ValueError('expected seconds or a duration such as "30s", "5m", "2h" or "1d"')
    return float(match[1]) * SECONDS[match[2]]


class HttpIndexSource(AsyncSource):
    """The files a web server lists under a folder, as records (see ``FIELDS``)."""

    name = "http_index"
    description = "A file server's folder listings (nginx, Apache, lighttpd), one record a file."
    capabilities = SourceCapabilities(complete=True, header=True)

    class Options(AdapterOptions):
        """What ``[jobs.NAME.source]`` may say for ``type = "http_index"``."""

        remote: str = Field("", description="The [remotes.NAME] serving the files (or `url`).")
        url: str = Field("", description="The server's base URL, when no `remote` is named.")
        path: str = Field("", description="The start folder, below the remote's or url's base.")
        depth: int = Field(32, ge=0, description="How many folder levels below the start "
                           "folder are entered (0: its own files only).")
        patterns: list[str] = Field(["*"], min_length=1, description="Globs on the relative "
                                    "path (`**` spans folders); one without `/` matches the "
                                    "file name at any depth.")
        check_available: bool = Field(False, description="Ask each file URL with HEAD; "
                                      "`is_available` follows (else it is true).")
        available_ttl: Annotated[float, BeforeValidator(seconds)] = Field(
            300.0, description='How long a HEAD answer is reused: seconds or "5m", "1h" '
            "(0: ask every run).")
        format: FormatOption = Field("auto", description="auto (by content type and body), "
                                     "nginx_json, nginx_xml or html (nginx, Apache, lighttpd).")
        rate_limit: str | None = Field(None, description='Overrides the remote\'s: "10/s", '
                                       '"600/min".')
        concurrency: int | None = Field(None, ge=1, description="Requests in flight at once "
                                        "(listings ahead and HEADs); overrides the remote's.")
        timeout: float | None = Field(None, gt=0, description="Seconds per request; overrides "
                                      "the remote's.")

        @field_validator("patterns")
        @classmethod
        def _globs(cls, value: list[str]) -> list[str]:
            for pattern in value:
                try:
                    re.compile(glob_regex(pattern), re.DOTALL)
                except (ValueError, re.error) as exc:
                    raise ValueError(f"bad pattern {pattern!r}: {exc}") from None
            return value

        @field_validator("url")
        @classmethod
        def _url(cls, value: str) -> str:
            if value and not re.match(r"^https?://[^/]+", value):
                raise ValueError(f"{value!r} is no http:// or https:// URL")
            return value

        @model_validator(mode="after")
        def _one_server(self) -> HttpIndexSource.Options:
            if self.remote and self.url:
                raise ValueError("give either `remote` or `url`, not both")
            return self

    def __init__(self, options: HttpIndexSource.Options, identifier: str | None = None) -> None:
        super().__init__(options, identifier)
        self.options: HttpIndexSource.Options = options
        self._url, self._path = options.url, options.path
        if identifier:  # `syncd sync JOB --file …`: another folder, or another server's
            if identifier.startswith(("http://", "https://")):
                self._url, self._path = identifier, ""
            else:
                self._path = identifier
        if not (self._url or options.remote):
            raise SourceError("the http_index source has no server: set `remote` or `url`")
        self._matches = glob_matcher(options.patterns)
        self._ctx: RunContext | None = None
        self.walker: Walker | None = None  # the last read's (tests count its listings)
        self.cache: AvailabilityCache | None = None

    @property
    def identifier(self) -> str:
        """The start folder's URL, or ``REMOTE:PATH`` when a remote's base URL is used."""
        if self._url:
            return folder_url(self._url, self._path)
        return f"{self.options.remote}:/{self._path.strip('/')}"

    @property
    def scope(self) -> str:
        """``on_missing`` touches the files of this start folder only."""
        return self.identifier

    def header(self) -> list[str]:
        return list(FIELDS)

    def open(self, ctx: RunContext) -> None:
        self._ctx = ctx

    def _client(self) -> HttpClient:
        if self._ctx is None:
            raise RuntimeError("the http_index source was read before open()")
        o = self.options
        overrides = {"rate_limit": o.rate_limit, "concurrency": o.concurrency,
                     "timeout": o.timeout}
        if o.remote and not self._url:
            return self._ctx.client(o.remote, **overrides)
        host = self._url.split("://", 1)[1].split("/", 1)[0]
        return self._ctx.client(host, base_url=self._url, **overrides)

    async def read(self, fields: Sequence[str], checkpoint: Checkpoint | None,
                   batch_rows: int) -> AsyncIterator[Batch]:
        unknown = [f for f in fields if f not in FIELDS]
        if unknown:
            raise JobError(f"the http_index source has no field {', '.join(map(repr, unknown))}",
                           hint=f"fields: {', '.join(FIELDS)}")
        index, after = 0, None
        if checkpoint:
            try:
                index = int(checkpoint["index"])
                after = str(checkpoint["path"]) if checkpoint.get("path") else None
            except (KeyError, TypeError, ValueError):
                raise SourceError(f"cannot resume {self.identifier} from {checkpoint!r}"
                                  ) from None
        client = self._client()
        root = folder_url(client.settings.base_url, self._path)
        if not root.startswith(("http://", "https://")):
            raise JobError(f"remote {self.options.remote!r} has no base_url",
                           hint=f"set base_url in [remotes.{self.options.remote}]")
        check = "is_available" in fields and self.options.check_available
        assert self._ctx is not None
        cache = AvailabilityCache(self._ctx.state_dir, self.options.available_ttl
                                  ) if check else None
        self.cache = cache
        self.walker = walker = Walker(client, root, self.options.depth, self.options.format,
                                      client.settings.concurrency)
        batch_rows = max(1, batch_rows)
        files: list[FileEntry] = []
        errors: list[ItemError] = []
        last = after
        try:
            async for entry in walker.walk(after):
                if isinstance(entry, Unlisted):
                    errors.append(entry.error)
                    last = entry.path
                    continue
                if not self._matches(entry.path):
                    continue
                files.append(entry)
                index, last = index + 1, entry.path
                if len(files) >= batch_rows:
                    yield await self._batch(files, errors, fields, client, cache,
                                            {"index": index, "path": last})
                    files, errors = [], []
            yield await self._batch(files, errors, fields, client, cache,
                                    {"index": index, "path": last})
        finally:
            await client.close()
            if cache is not None:
                cache.close()

    async def _batch(self, files: list[FileEntry], errors: list[ItemError],
                     fields: Sequence[str], client: HttpClient, cache: AvailabilityCache | None,
                     checkpoint: Checkpoint) -> Batch:
        available = await cache.check(client, files) if cache is not None else {}
        rows: list[Row] = []
        for entry in files:
            record = file_fields(entry, self.scope)
            record["is_available"] = available.get(entry.url, True)
            rows.append(tuple(record[f] for f in fields))
        return Batch(rows, [f.path for f in files], checkpoint, errors,
                     progress=int(checkpoint["index"]))


def folder_url(base: str, path: str) -> str:
    """The absolute URL of the folder ``path`` below ``base``, ending with ``/``."""
    path = quote(path.strip("/"), safe=PCHAR + "/%")
    url = base.rstrip("/") + "/" + path
    return url if url.endswith("/") else url + "/"


def file_fields(entry: FileEntry, scope: str) -> dict[str, Any]:
    """A file's record but ``is_available``: the inventory's fields and guesses, the URL."""
    guessed = file_record(Entry(entry.path, entry.size or 0, entry.modified_at or ""), scope)
    return {"url": entry.url, "path": entry.path, "name": guessed["name"],
            "extension": guessed["extension"], "size": entry.size,
            "modified_at": entry.modified_at, "mime": guessed["mime"],
            "media_type": guessed["media_type"], "title": guessed["title"],
            "artist": guessed["artist"], "album": guessed["album"]}
