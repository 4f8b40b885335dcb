"""The status page's files (SPEC §12): served without a token, under a strict CSP,
with no inline script or style for that policy to block."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from syncd.api import make_app
from syncd.api.page import CSP, FILES, read_static
from tests.api_fixtures import build

TOKEN = "files-token-5521"


async def test_the_page_and_its_files_need_no_token_and_carry_the_policy(
        aiohttp_client: Any, tmp_path: Path) -> None:
    h = build(tmp_path / "state", {}, token=TOKEN)
    client = await aiohttp_client(make_app(h.context))
    for path, kind in (("/", "text/html"), ("/static/app.js", "text/javascript"),
                       ("/static/style.css", "text/css")):
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == kind
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert TOKEN not in await response.text()
    for path in ("/static/nope.js", "/static/..%2Fpage.py", "/static/index.htm"):
        assert (await client.get(path)).status == 404, path
    # everything else still wants the token
    assert (await client.get("/v1/jobs")).status == 401
    assert (await client.get("/v1/events")).status == 401
    await h.close()


def test_no_inline_script_or_style_and_nothing_from_elsewhere() -> None:
    html = read_static("index.html").decode()
    assert "script-src 'self'" in CSP and "'unsafe-inline'" not in CSP
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'src="static/' in tag, tag
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), "inline script"
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    script = read_static("app.js").decode()
    assert ".innerHTML" not in script and "eval(" not in script
    assert "localStorage" not in script  # the token stays in the tab's sessionStorage
    assert set(FILES) == {"index.html", "app.js", "style.css"}
