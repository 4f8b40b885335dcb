"""The REST source (``type = "rest"``, alias ``"api"``): records from an HTTP API, page by page.

HTTP goes through the run's ``ctx.client``: a ``[remotes.NAME]``'s base URL, auth,
retries (429 and 5xx, ``Retry-After`` honoured) and the rate limit it shares with
every run that names it; or the source's own ``url`` with auth, rate limit and
timeout of its own. Pages follow as ``rest_pages`` says, and a server that loops
ends the run with a ``pagination_loop`` error.

Checkpoints. Pages are committed as they come: one batch per page, or per few pages
within ``batch_rows`` records and 2 seconds. The checkpoint after a batch holds where
the next page is (``next``: page, offset, cursor or URL), the pages read and the hash
of the last one; a resumed run asks for no committed page again. The last checkpoint
says ``done`` (and ``cut`` when ``max_pages`` stopped the read).

Completeness. A read of every page is complete, so ``on_missing`` applies; an
incremental read, or one cut by ``max_pages`` with more pages announced, is not: the
source's ``capabilities`` say so per run.

Incremental. The checkpoint carries ``since`` (the value sent as ``param``) and
``max`` (the largest ``field`` seen so far); the next run sends the ``max`` of the last
completed run (``RunContext.previous_checkpoint``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from syncd.adapters import (
    AsyncSource,
    Batch,
    Checkpoint,
    ItemError,
    Row,
    RunContext,
    SourceCapabilities,
)

from .rest_check import reach
from .rest_options import RestOptions
from .rest_pages import Pager
from .rest_records import Picker, cell, larger, records_at

if TYPE_CHECKING:
    pass

COMMIT_SECONDS = 2.0  # a checkpoint at least this often, whatever batch_rows says


class RestSource(AsyncSource):
    """Records of a REST API; see the module's docstring for checkpoints and completeness."""

    name = "rest"
    description = "records from a REST API, page by page (alias: api)"
    Options = RestOptions
    capabilities = SourceCapabilities(remote=True)

    def __init__(self, options: RestOptions, identifier: str | None = None) -> None:
        super().__init__(options, identifier)
        self.options: RestOptions = options
        self.capabilities = SourceCapabilities(complete=options.incremental is None,
                                               remote=True)
        self.ctx: RunContext | None = None
        self._clients: list[Any] = []

    @property
    def identifier(self) -> str:
        if self.identifier_override:
            return self.identifier_override
        if self.options.url is not None:
            return self.options.url.rstrip("/") + _slash(self.options.path)
        return f"{self.options.remote}:{_slash(self.options.path) or '/'}"

    def open(self, ctx: RunContext) -> None:
        self.ctx = ctx

    # -- reading ------------------------------------------------------------------

    async def read(self, fields: Sequence[str], checkpoint: Checkpoint | None,
                   batch_rows: int) -> AsyncIterator[Batch]:
        state = dict(checkpoint or {})
        if state.get("done"):
            if state.get("cut"):
                self._cut()
            return
        options = self.options
        incremental = options.incremental
        since = state["since"] if "since" in state else self._since()
        top = state.get("max", since)
        pages = int(state.get("pages", 0))
        pager = Pager(options.pagination, state.get("next"), state.get("hash"))
        picker = Picker(fields)
        client, path = self._client()
        rows: list[Row] = []
        items: list[str] = []
        errors: list[ItemError] = []
        last = time.monotonic()
        try:
            while True:
                url, paging = pager.request()
                target = url or path
                params, body = self._request_values(paging if url is None else {},
                                                    since if url is None else None)
                answer = await client.request(options.method, target, params=params,
                                              json_body=body, headers=options.headers)
                requested = client.url(target)
                data = answer.json()
                records = records_at(data, options.data_path,
                                     f"{options.method} {_no_query(requested)}")
                pages += 1
                for number, record in enumerate(records, 1):
                    item = f"page {pages} record {number}"
                    if not isinstance(record, dict):
                        errors.append(ItemError(
                            "parsing", "not_an_object", f"a record is "
                            f"{type(record).__name__}, not a JSON object", item=item))
                        continue
                    rows.append(picker.row(record))
                    items.append(item)
                    if incremental is not None:
                        top = larger(top, cell(picker.value(record, incremental.field)))
                more = pager.advance(records, answer.body, data, answer.headers, requested)
                limit = options.pagination.max_pages
                cut = more and bool(limit) and pages >= limit
                position: Checkpoint = {"pages": pages, "hash": pager.last_hash}
                if incremental is not None:
                    position |= {"since": since, "max": top}
                if cut:
                    position |= {"done": True, "cut": f"max_pages ({limit}) reached with more "
                                                      "pages announced"}
                    self._cut()
                elif not more:
                    position["done"] = True
                else:
                    position["next"] = pager.position
                due = (len(rows) + len(errors) >= batch_rows
                       or time.monotonic() - last >= COMMIT_SECONDS or self._cancelled())
                if not more or cut or due:
                    yield Batch(rows, items, position, errors, progress=pages)
                    rows, items, errors = [], [], []
                    last = time.monotonic()
                if not more or cut:
                    return
        finally:
            await client.close()
            self._clients.remove(client)

    async def check(self, ctx: RunContext) -> str:
        """One authenticated GET of the source's path (its first page at most)."""
        self.open(ctx)
        client, path = self._client()
        try:
            return await reach(client, path, _query(self.options.params),
                               self.options.headers)
        finally:
            await client.close()
            self._clients.remove(client)

    async def aclose(self) -> None:
        for client in list(self._clients):
            await client.close()
        self._clients.clear()

    # -- helpers ------------------------------------------------------------------

    def _client(self) -> tuple[Any, str]:
        """The run's HTTP client for this source, and the path it reads."""
        if self.ctx is None:
            raise RuntimeError("open() the source with the run's context before reading")
        options, override = self.options, self.identifier_override
        if options.remote is not None and not _is_url(override):
            client = self.ctx.client(options.remote)
            path = override or options.path
        else:
            base = override if _is_url(override) else options.url
            assert base is not None  # the options ask for remote or url
            settings: dict[str, Any] = {"base_url": base, "timeout": options.timeout,
                                        "rate_limit": options.rate_limit}
            if options.auth:
                settings["auth"] = dict(options.auth)
            client = self.ctx.client(urlsplit(base).netloc, **settings)
            path = "" if override else options.path
            path = path or base  # the URL itself, not base_url + "/"
        self._clients.append(client)
        return client, path

    def _request_values(self, paging: dict[str, Any], since: Any
                        ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Query parameters and JSON body; paging and ``since`` go in the body of a POST."""
        extra = dict(paging)
        if since is not None and self.options.incremental is not None:
            extra[self.options.incremental.param] = since
        if self.options.method == "POST":
            return _query(self.options.params), {**(self.options.body or {}), **extra}
        return _query({**self.options.params, **extra}), None

    def _since(self) -> Any:
        previous = self.ctx.previous_checkpoint if self.ctx is not None else None
        if self.options.incremental is None or not previous:
            return None
        return previous.get("max")

    def _cut(self) -> None:
        """This run's read stops short of the end: it does not prove anything missing."""
        self.capabilities = SourceCapabilities(complete=False, remote=True)
        if self.ctx is not None:
            self.ctx.log.warning("max_pages reached with more pages announced: the read is "
                                 "cut, so on_missing does not apply",
                                 max_pages=self.options.pagination.max_pages)

    def _cancelled(self) -> bool:
        return self.ctx is not None and self.ctx.cancelled()


def _slash(path: str) -> str:
    return "/" + path.lstrip("/") if path else ""


def _is_url(value: str | None) -> bool:
    return bool(value) and str(value).startswith(("http://", "https://"))


def _no_query(url: str) -> str:
    return url.split("?", 1)[0]


def _query(values: dict[str, Any]) -> dict[str, Any]:
    """Parameters as aiohttp sends them: booleans as ``true``/``false``."""
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in values.items()}
