"""What a failed step leaves behind: a screenshot, the page's HTML and a trace.

Saved under ``state_dir/artifacts/RUN/`` (``RunContext.work_dir``, which the store's
cleanup removes with the run) and named in the record's error message, so
``syncd show RUN`` and the API lead to them. The trace holds what the context did
since the last saved one (traces are kept on failure only). Saving never raises: a
page that cannot be photographed must not hide the failure itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syncd.adapters import RunContext

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def label_of(*parts: object) -> str:
    """A file-name-safe label such as ``2027-03-15-create-step3``."""
    return "-".join(_UNSAFE.sub("_", str(p)).strip("_")[:60] for p in parts if str(p))


async def save(page: Any, ctx: RunContext, label: str, tracing: Any) -> list[Path]:
    """Screenshot, HTML and (with ``tracing``) the trace chunk; the paths saved."""
    if ctx.state_dir is None:
        return []
    folder = ctx.work_dir
    saved: list[Path] = []
    shot, html, trace = (folder / f"{label}.png", folder / f"{label}.html",
                         folder / f"{label}.trace.zip")
    try:
        await page.screenshot(path=str(shot), full_page=True, timeout=5000)
        saved.append(shot)
    except Exception as exc:
        ctx.log.warning("no screenshot of the failed step", error=_first(exc))
    try:
        html.write_text(await page.content(), encoding="utf-8")
        saved.append(html)
    except Exception as exc:
        ctx.log.warning("no HTML of the failed step", error=_first(exc))
    if tracing is not None:
        try:
            await tracing.stop_chunk(path=str(trace))
            saved.append(trace)
        except Exception as exc:
            ctx.log.warning("no trace of the failed step", error=_first(exc))
        finally:
            await tracing.start_chunk()
    return saved


def named(paths: Sequence[Path]) -> str:
    """The artifacts as an error message names them."""
    if not paths:
        return ""
    return f" (artifacts in {paths[0].parent}: {', '.join(p.name for p in paths)})"


def _first(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
