"""Media of the REST target: files named by a record's fields, uploaded once per content.

``files = { photo = "photo_path" }`` uploads the file whose path is in the record's
``photo_path`` as multipart form data to ``upload``, then sends the record with
``photo`` set to the uploaded file's remote id (and without ``photo_path``). The id
map keeps the upload under ``KEY#photo`` with the hash of the file's bytes, so an
unchanged file is never sent again, whatever else of the record changed. With
``resize``, an image is scaled down before it goes out (``media_resize``); the hash
stays that of the original file. The upload carries an ``Idempotency-Key`` made of
the job, key, name and that hash: a run killed between an upload and its commit sends
the same key again.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from syncd.adapters import Change, ItemError, RunContext
from syncd.errors import RemoteRejected

from .media_resize import Resize, resized
from .rest_payload import dig


class Upload(BaseModel):
    """Where files go: ``{ method, path, id_path, form_field }``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = Field("POST", description="HTTP method of an upload")
    path: str = Field(description="path files are uploaded to")
    id_path: str = Field("id", description="dotted path of the file's id in the answer")
    form_field: str = Field("file", description="the multipart field holding the file")


class FileProblem(Exception):
    """A record's file cannot be read: that record fails, the rest go on."""

    def __init__(self, error: ItemError) -> None:
        super().__init__(error.message)
        self.error = error


class Media:
    """Uploads a record's files before the record is sent (one per ``files`` entry)."""

    def __init__(self, files: dict[str, str], upload: Upload, client: Any,
                 ctx: RunContext, resize: Resize | None = None) -> None:
        self.files, self.upload, self.client, self.ctx = files, upload, client, ctx
        self.resize = resize

    async def attach(self, change: Change) -> tuple[Change, dict[str, tuple[str, str]]]:
        """The change with each file replaced by its remote id; what was uploaded now."""
        record, uploaded = dict(change.record), {}
        known = (self.ctx.idmap.entries([f"{change.key}#{n}" for n in self.files])
                 if self.ctx.idmap is not None else {})
        for name, field in self.files.items():
            path = record.pop(field, None)
            if not path:
                continue
            data, digest = await asyncio.to_thread(_read, Path(str(path)), change, field)
            remote_id, stored = known.get(f"{change.key}#{name}", (None, None))
            if remote_id is None or stored != digest:
                if self.resize is not None and not self.ctx.dry_run:
                    data = await asyncio.to_thread(resized, data, self.resize,
                                                   self.ctx.state_dir)
                remote_id = await self._send(change, name, Path(str(path)), data, digest)
                uploaded[name] = (remote_id, digest)
            record[name] = remote_id
        return replace(change, record=record), uploaded

    async def _send(self, change: Change, name: str, path: Path, data: bytes,
                    digest: str) -> str:
        import aiohttp  # the client's own dependency, imported when a file goes out

        def form() -> aiohttp.FormData:  # a fresh form for every attempt
            body = aiohttp.FormData()
            body.add_field(self.upload.form_field, data, filename=path.name,
                           content_type=mimetypes.guess_type(path.name)[0]
                           or "application/octet-stream")
            return body

        key = hashlib.sha256(f"{self.ctx.job}\0{change.key}\0{name}\0{digest}".encode())
        if self.ctx.dry_run:
            return f"(dry run: {path.name})"
        answer = (await self.client.request(self.upload.method, self.upload.path, data=form,
                                            idempotency_key=key.hexdigest())).json()
        remote_id = dig(answer, self.upload.id_path)
        if remote_id in (None, ""):
            raise RemoteRejected(f"the upload of {path.name} answered no id at "
                                 f"{self.upload.id_path!r}", code="no_id")
        return str(remote_id)


def _read(path: Path, change: Change, field: str) -> tuple[bytes, str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileProblem(ItemError("validation", "file_unreadable",
                                    f"{field}: cannot read {path}: {exc.strerror}",
                                    change.item)) from None
    return data, hashlib.sha256(data).hexdigest()
