"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from app.api.allow import install_allow_handler
from app.api.deps import get_principal, get_stream_principal
from app.api.docs import install_docs
from app.api.limits import BodySizeLimit
from app.api.openapi import install_problem_openapi
from app.api.problems import install_problem_handlers
from app.api.routes import datasets, events, health, metrics, models, runs, tickets, trials
from app.api.sse import install_server_send
from app.api.state import ApiRuntime
from app.auth.cache import TokenCache
from app.auth.http import UNAUTHORIZED_RESPONSES, install_auth_handlers, mask_stream_tickets
from app.auth.tickets import StreamTickets
from app.config import Settings, get_settings
from app.db.session import resolve_database_url
from app.events.hub import EventHub
from app.observability.http import install_http_metrics
from app.observability.metrics import ApiMetrics
from app.queue.app import create_queue_app
from app.runtime import create_runtime
from app.ui.router import install_dashboard


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database_url = resolve_database_url(settings)
        # The queue app is not opened: jobs are deferred on the request's own connection.
        # One pool sized to the requests that may hold a connection at once; no overflow
        # connections opened and closed per burst.
        runtime = create_runtime(
            settings,
            database_url,
            create_queue_app(database_url, settings),
            pool_size=settings.api_pool_size,
            max_overflow=0,
        )
        sessions = runtime.sessions
        hub = EventHub.for_database(
            database_url,
            sessions,
            revoked_tokens=events.token_revocations(sessions) if settings.auth_enabled else None,
            auth_recheck_s=settings.stream_auth_recheck_seconds,
        )
        app.state.cerebros = ApiRuntime.with_hub(runtime, hub)
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()
            await runtime.close()

    app = FastAPI(
        title="Cerebros NAS run service",
        version="0.1.0",
        description="Submit neural-architecture-search runs, follow them, fetch their results.",
        lifespan=lifespan,
        # /docs is served from vendored files (app/api/docs.py); ReDoc would need a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        streamed=frozenset({("POST", "/datasets")}),  # its own limit, checked as it streams
    )
    install_auth_handlers(app)
    install_allow_handler(app)
    # Outermost: requests are counted with the status the client got, errors included.
    app.state.metrics = ApiMetrics()
    install_http_metrics(app, app.state.metrics)
    install_server_send(app)  # outside even that: streams write to the server's transport
    app.include_router(health.router)
    app.include_router(metrics.router)  # no token: counts only, no owner's data
    # Everything but /health* (and the docs) needs a token: enforced here, per router, so a
    # route that forgets the owner dependency is still protected.
    for router in (runs.router, trials.router, models.router, tickets.router, datasets.router):
        app.include_router(
            router, dependencies=[Depends(get_principal)], responses=UNAUTHORIZED_RESPONSES
        )
    # Checked tokens are trusted for CEREBROS_AUTH_CACHE_SECONDS (revocation takes that long).
    app.state.token_cache = TokenCache(settings.auth_cache_seconds)
    # Event streams also open with a stream ticket (?ticket=): EventSource sends no headers.
    app.state.stream_tickets = StreamTickets(settings.stream_ticket_seconds)
    mask_stream_tickets()
    app.include_router(
        events.router,
        dependencies=[Depends(get_stream_principal)],
        responses=UNAUTHORIZED_RESPONSES,
    )
    install_problem_openapi(app)
    install_docs(app)
    install_dashboard(app, auth_enabled=settings.auth_enabled)  # public: files hold no data
    return app
