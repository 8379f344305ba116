"""HTTP request metrics: count and latency by method, route template and status code.

`install_http_metrics` puts `HttpMetrics` outside everything else, Starlette's
ServerErrorMiddleware included: a route that raises is counted with the status the client
got (the app's handlers answer a database outage 503, not 500), which a middleware added
with `add_middleware` (always inside ServerErrorMiddleware) cannot see.

The route is the template of the route that answered (`/runs/{run_id}`), read from the ASGI
scope once routing is done, never the raw path. A request no route answered (a 404, a
trailing-slash redirect) is labelled `UNMATCHED`, so no caller can create label values.
That is why prometheus-fastapi-instrumentator is not used: it labels a trailing-slash
redirect with the raw path (`/runs/<anything>/`), one new series per distinct path, for
anyone who can reach the API.
"""

from __future__ import annotations

import time
from typing import Final

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.metrics import ApiMetrics

UNMATCHED: Final = "<unmatched>"


def route_template(scope: Scope) -> str:
    """The path template of the route that handled `scope` (a mount: its prefix)."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class HttpMetrics:
    """ASGI middleware recording every HTTP request in `metrics` once its headers are sent.

    A request that raised before sending any is recorded with status 500. A client gone before
    an answer is not counted.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                self.metrics.observe_request(
                    scope["method"], route_template(scope), status, time.perf_counter() - started
                )

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        except Exception:
            record(500)  # only when nothing answered it (no ServerErrorMiddleware inside)
            raise


def install_http_metrics(app: Starlette, metrics: ApiMetrics) -> None:
    """Wrap `app`'s whole middleware stack (built at its first request) in `HttpMetrics`."""
    build = app.build_middleware_stack

    def build_with_metrics() -> ASGIApp:
        return HttpMetrics(build(), metrics)

    app.build_middleware_stack = build_with_metrics  # type: ignore[method-assign]
