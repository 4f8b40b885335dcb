"""The aiohttp application factory: routes, middlewares, and what they share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from syncd.api import hooks, middleware, page
from syncd.api.context import CONTEXT, ApiContext
from syncd.api.events import EventHub
from syncd.api.ledger_routes import ledger_routes
from syncd.api.metrics import Metrics
from syncd.api.requests import MAX_BODY
from syncd.api.routes import HUB, METRICS, routes
from syncd.engine.announce import Listener


def make_app(context: ApiContext) -> web.Application:
    """Build the control API around a running engine and store."""
    app = web.Application(
        middlewares=[middleware.errors, middleware.auth, middleware.closing],
        client_max_size=MAX_BODY)
    app[CONTEXT] = context
    app[HUB] = EventHub()
    app[METRICS] = Metrics(context.engine, context.store)
    app.add_routes(routes)
    app.add_routes(ledger_routes)
    app.add_routes(hooks.routes)
    app.add_routes(page.routes)
    app[hooks.LOCK] = asyncio.Lock()
    app.cleanup_ctx.append(_listen_to_engine)
    app.on_shutdown.append(_end_streams)
    return app


async def _end_streams(app: web.Application) -> None:
    """End open event streams first, so shutdown does not wait for them to time out."""
    app[HUB].close()


async def _listen_to_engine(app: web.Application) -> AsyncIterator[None]:
    """Feed engine events to the SSE hub and the metrics while the app runs."""
    engine = app[CONTEXT].engine
    listeners: list[Listener] = [app[HUB], app[METRICS]]
    engine.listeners.extend(listeners)
    yield
    for listener in listeners:
        engine.listeners.remove(listener)
