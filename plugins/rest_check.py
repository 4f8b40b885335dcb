"""``syncd check`` of the REST source and target: reach the remote, authenticated.

One GET with the job's credentials, touching no data. A 401 or 403 is the
``AuthError`` the HTTP client raises (no body quoted: it may echo credentials); any
other refusal (404, 405 …) still proves the remote answered and did not refuse the
credentials, so the check passes and says what answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.errors import RemoteRejected


async def reach(client: Any, path: str, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> str:
    """GET ``path`` through ``client`` (an ``HttpClient``); one line on success."""
    where = client.url(path).split("?", 1)[0]
    try:
        answer = await client.request("GET", path, params=params or None, headers=headers)
    except RemoteRejected as exc:
        status = exc.code.removeprefix("http_") if exc.code else "an error"
        return (f"GET {where} answered {status}: the remote is reachable and did not "
                "refuse the credentials")
    return f"GET {where} answered {answer.status}: reachable, credentials accepted"
