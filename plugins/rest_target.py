"""REST target: creates, updates and deletes records on a remote's REST API (SPEC §8).

The engine keeps the id map as the outbox (intents committed before a create, results
with the checkpoint) and translates ``references``; this adapter turns one ``Change``
into requests: names resolved before the intent commits (``prepare``), the create sent
with the intent's ``Idempotency-Key`` and never blindly again when its answer is lost
(the remote is asked first), updates checked for changes on the remote's side
(``conflict``), and the remote id read from the answer at ``id_path``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from pydantic import Field, PositiveInt, model_validator

from syncd.adapters import (
    AsyncRecordTarget,
    Change,
    ItemError,
    Options,
    Result,
    RunContext,
    TargetCapabilities,
    TargetSchema,
    is_unsent,
)
from syncd.errors import AdapterError, NetworkError, RemoteRejected

from .media_resize import Resize
from .rest_check import reach
from .rest_lookup import Names
from .rest_media import FileProblem, Media, Upload
from .rest_payload import dig, fields_of, parent, payload, remote_hash, render, wrap
from .rest_preview import preview

AMBIGUOUS = "ambiguous"  # the code of a NetworkError whose request may have been carried out
CREATE_TRIES = 3  # a create whose answer was lost: asked about, then sent again (same key)


class Endpoint(Options):
    method: str = Field("POST", description="HTTP method")
    path: str = Field(description="path template: {field} of the record, {remote_id}")


class Lookup(Options):
    path: str = Field(description="list endpoint of a record's scope (path template)")
    data_path: str = Field("", description="dotted path to the records in its answer")
    match: list[str] = Field(["name"], description="fields that identify a record there")


class RestTarget(AsyncRecordTarget):
    """One record at a time to a REST API, through the id map."""

    name = "rest"
    description = "REST API (create/update/delete templates, id map, names, conflicts)"
    capabilities = TargetCapabilities(update=True, delete=True, lookup=True, concurrency=16)

    class Options(Options):
        remote: str | None = Field(None, description="the [remotes.NAME] to talk to")
        url: str = Field("", description="base URL (instead of a remote, or overriding its)")
        rate_limit: str | None = Field(None, description="overrides the remote's, e.g. 10/s")
        concurrency: PositiveInt | None = Field(None, description="requests in flight")
        timeout: float | None = Field(None, gt=0, description="seconds per request")
        key: list[str] = Field(["id"], description="the local key of each record")
        create: Endpoint = Field(description="{method, path} of a create")
        update: Endpoint | None = Field(None, description="{method, path} of an update")
        delete: Endpoint | None = Field(None, description="{method, path} of a delete")
        read: Endpoint | None = Field(None, description="GET of one record (conflict "
                                      "checks); default: GET on the update path")
        id_path: str = Field("id", description="dotted path of the new id in a create's answer")
        body_path: str = Field("", description="wrapper of the body: \"advertiser\" sends "
                               "{\"advertiser\": {...}}")
        payload: Literal["clean", "as_is"] = Field("clean", description="clean: strings "
                                                    "trimmed, empty strings and nulls left out")
        send_key: bool = Field(False, description="send the key fields too")
        lookup: Lookup | None = Field(None, description="{path, data_path, match}: how to "
                                      "find what the remote holds")
        on_name_conflict: Literal["suffix", "adopt", "fail"] = Field(
            "suffix", description="a remote record of the same name the id map does not "
            "know: send \"Name (1)\" | map to it | fail")
        name_field: str = Field("name", description="the field holding a record's name")
        conflict: Literal["local", "remote", "newest", "review"] = Field(
            "local", description="both sides changed since the last sync: who wins")
        updated_field: str = Field("updated_at", description="compared by conflict = newest")
        files: dict[str, str] = Field({}, description="name = field holding a file's path: "
                                      "uploaded once per content, sent as its remote id")
        upload: Upload | None = Field(None, description="{method, path, id_path, "
                                      "form_field}: where files are uploaded")
        resize: Resize | None = Field(None, description="{max, quality}: images scaled "
                                      "down before upload (Pillow: syncd[media])")

        @model_validator(mode="after")
        def _where(self) -> RestTarget.Options:
            if self.files and self.upload is None:
                raise ValueError("files need upload = {method, path, id_path}")
            if not self.remote and not self.url:
                raise ValueError("name a remote = \"NAME\" (a [remotes.NAME]) or a url")
            if self.conflict != "local" and self.update is None:
                raise ValueError(f"conflict = {self.conflict!r} needs update = {{method, path}}")
            return self

    options: RestTarget.Options

    async def open(self, schema: TargetSchema, ctx: RunContext) -> None:
        o = self.options
        self.ctx = ctx
        self.client = ctx.client(o.remote or f"url:{o.url}", base_url=o.url or None,
                                 rate_limit=o.rate_limit, concurrency=o.concurrency,
                                 timeout=o.timeout)
        self.drop = () if o.send_key else tuple(schema.key)
        self.fields = [n for n in (*schema.columns, *schema.constants) if n not in self.drop]
        known = ctx.idmap.known if ctx.idmap is not None else (lambda ids: set())
        self.names = None
        self._unnamed: dict[str, AdapterError] = {}
        self.media = (Media(o.files, o.upload, self.client, ctx, o.resize)
                      if o.files and o.upload else None)
        if o.lookup is not None:
            self.names = Names(self._get, o.lookup.path, o.lookup.data_path, o.lookup.match,
                               o.name_field, o.on_name_conflict, known,
                               id_field=o.id_path.rpartition(".")[2] or "id")

    async def close(self) -> None:
        await self.client.close()

    async def check(self, schema: TargetSchema, ctx: RunContext) -> str:
        """One authenticated GET: of the lookup or create path when it needs no record
        field, else of the remote's base path. Nothing is written."""
        await self.open(schema, ctx)
        o = self.options
        paths = [o.lookup.path if o.lookup else "", o.create.path]
        try:
            return await reach(self.client, next(
                (p for p in paths if p and not fields_of(p)), ""))
        finally:
            await self.close()

    # -- the engine's calls ---------------------------------------------------------

    async def prepare(self, changes: list[Change]) -> list[Change]:
        """Final names of the batch's new records (reads only: also in a dry run)."""
        if self.names is None or self.options.name_field not in self.fields:
            return changes
        done = len(self.names.renames)
        named = []
        for change in changes:
            try:
                named.append(await self.names.name(change))
            except AdapterError as exc:  # reported by apply, as this record's error
                self._unnamed[change.key] = exc
                named.append(change)
        for key, base, name in self.names.renames[done:]:
            self.ctx.log.info("name taken on the remote; renamed", key=key, name=base,
                              sent_as=name, dry_run=self.ctx.dry_run)
        return named

    async def apply(self, change: Change) -> Result:
        failed = self._unnamed.pop(change.key, None)
        if failed is not None:
            raise failed
        if change.kind in ("create", "update"):
            uploaded: dict[str, tuple[str, str]] = {}
            if self.media is not None:
                try:
                    change, uploaded = await self.media.attach(change)
                except FileProblem as problem:
                    return Result.failed(problem.error)
            sent = await (self._create(change) if change.kind == "create"
                          else self._update(change))
            return replace(sent, media=uploaded) if uploaded else sent
        if change.kind == "delete":
            return await self._delete(change)
        return Result.failed(ItemError("target", "unsupported", f"{change.kind} is not "
                                       "supported by the REST target", change.item))

    async def preview(self, change: Change) -> Result | None:
        """A dry run's look at one change (``rest_preview``): sends nothing."""
        return await preview(self, change)

    async def find(self, change: Change) -> str | None:
        """An interrupted create's record, by the name and fields it was sent with."""
        if self.names is None:
            return None  # the create is sent again with the same Idempotency-Key
        return await self.names.find(change, self._body(change))

    # -- requests ---------------------------------------------------------------------

    def _body(self, change: Change) -> dict[str, Any]:
        sent, field = change.sent or {}, self.options.name_field
        # the final name chosen for the create, while the record keeps the name it had
        current = str(change.record.get(field) or "").strip()
        name = ({field: sent["name"]} if sent.get("name")
                and str(sent.get("base", current)) == current else None)
        return payload(change.record, drop=self.drop, clean=self.options.payload == "clean",
                       overrides=name)

    def _record_in(self, answer: Any) -> Any:
        where = parent(self.options.id_path)
        return dig(answer, where) if where else answer

    async def _get(self, path: str) -> Any:
        if is_unsent(path):  # a dry run's scope that an upstream job would create first
            return {}
        return (await self.client.request("GET", path)).json()

    async def _create(self, change: Change) -> Result:
        o, sent = self.options, change.sent or {}
        if sent.get("fail"):
            return Result.failed(ItemError(
                "conflict", "name_taken", f"{o.name_field} {sent['name']!r} is taken on the "
                "remote by a record syncd did not create (on_name_conflict = \"fail\")",
                change.item))
        if sent.get("adopt"):
            remote_id = str(sent["adopt"])
            if o.update is None:
                return Result("adopted", remote_id)
            updated = await self._put(change, remote_id)
            return Result("adopted", remote_id, remote_hash=updated.remote_hash)
        body = self._body(change)
        path = render(o.create.path, change.record)
        for attempt in range(1, CREATE_TRIES + 1):
            try:
                answer = (await self.client.request(
                    o.create.method, path, json_body=wrap(o.body_path, body),
                    idempotency_key=change.idempotency_key, retry_ambiguous=False)).json()
                break
            except NetworkError as exc:
                if exc.code != AMBIGUOUS:
                    raise
                found = await self.find(change)  # did it arrive? ask before sending again
                if found is not None:
                    return Result("adopted", found)
                if attempt == CREATE_TRIES:
                    raise
        remote_id = dig(answer, o.id_path)
        if remote_id is None or remote_id == "":
            raise RemoteRejected(f"the answer to the create has no id at {o.id_path!r}",
                                 code="no_remote_id")
        return Result("created", str(remote_id),
                      remote_hash=remote_hash(self._record_in(answer), self.fields))

    async def _update(self, change: Change) -> Result:
        o = self.options
        assert change.remote_id is not None
        if o.update is None:
            return Result.failed(ItemError("conflict", "not_updatable", f"key {change.key!r} "
                                           "changed, and the target has no update", change.item))
        if o.conflict != "local" and change.remote_hash is not None:
            remote = await self._read(change, change.remote_id)
            seen = remote_hash(remote, self.fields)
            if seen != change.remote_hash:  # changed on both sides
                decided = self._decide(change, remote, seen)
                if decided is not None:
                    return decided
        return await self._put(change, change.remote_id)

    def _decide(self, change: Change, remote: Any, seen: str | None) -> Result | None:
        """Both sides changed: None sends ours, else what becomes of the record."""
        o, remote_id = self.options, change.remote_id
        if o.conflict == "newest":
            mine = str(change.record.get(o.updated_field) or "")
            theirs = str((remote or {}).get(o.updated_field) or "")
            return None if mine >= theirs else Result("kept", remote_id, remote_hash=seen)
        if o.conflict == "remote":
            return Result("kept", remote_id, remote_hash=seen)
        return Result("conflict", remote_id, ItemError(
            "conflict", "review", "changed here and on the remote since the last sync; "
            "waiting for a person (syncd conflicts)", change.item),
            remote_hash=seen, remote_record=remote if isinstance(remote, dict) else {})

    async def _read(self, change: Change, remote_id: str) -> Any:
        o = self.options
        endpoint = o.read or o.update
        assert endpoint is not None
        answer = await self._get(render(endpoint.path, change.record, remote_id))
        return self._record_in(answer)

    async def _put(self, change: Change, remote_id: str) -> Result:
        o = self.options
        assert o.update is not None
        body = self._body(change)
        response = await self.client.request(
            o.update.method, render(o.update.path, change.record, remote_id),
            json_body=wrap(o.body_path, body))
        record = self._record_in(response.json()) if response.body.strip() else None
        return Result("updated", remote_id,
                      remote_hash=remote_hash(record if isinstance(record, dict) else body,
                                              self.fields))

    async def _delete(self, change: Change) -> Result:
        o = self.options
        if o.delete is None or change.remote_id is None:
            return Result.failed(ItemError("target", "not_deletable", "the target has no "
                                           "delete", change.item))
        last = dict((change.sent or {}).get("fields") or {})  # as last sent (id map)
        await self.client.request(o.delete.method, render(
            o.delete.path, {**last, **change.record}, change.remote_id))
        return Result("deleted", change.remote_id)
