"""A photo gallery's API: records with a photo, uploaded as multipart form data.

``POST /photos`` / ``PUT /photos/{id}`` keep records (their ``photo`` is the id of an
upload); ``POST /media`` takes a ``file`` part and answers ``{"media": {"id": …}}``,
honouring ``Idempotency-Key``. Every upload is counted with the sha256 of its bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from tests.fakes.threaded import ThreadedServer


class GalleryFake(ThreadedServer):
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.uploads: list[tuple[str, str]] = []  # (file name, sha256)
        self.media: dict[str, bytes] = {}
        self._by_key: dict[str, str] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/photos", self._create)
        app.router.add_put("/photos/{id}", self._update)
        app.router.add_post("/media", self._upload)
        return app

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        rid = f"p{len(self.records) + 1}"
        self.records[rid] = body
        return web.json_response({"photo": {"id": rid, **body}}, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        rid = request.match_info["id"]
        if rid not in self.records:
            return web.json_response({"error": "no such photo"}, status=404)
        self.records[rid] = await request.json()
        return web.json_response({"photo": {"id": rid, **self.records[rid]}})

    async def _upload(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        if key and key in self._by_key:
            return web.json_response({"media": {"id": self._by_key[key]}}, status=201)
        form = await request.post()
        part = form.get("file")
        if not isinstance(part, web.FileField):
            return web.json_response({"error": "no file part"}, status=422)
        data = part.file.read()
        mid = f"m{len(self.media) + 1}"
        self.media[mid] = data
        self.uploads.append((part.filename, hashlib.sha256(data).hexdigest()))
        if key:
            self._by_key[key] = mid
        return web.json_response({"media": {"id": mid}}, status=201)
