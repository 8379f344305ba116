"""GET /metrics: Prometheus exposition of this API process (no token: counts only).

Left out of the OpenAPI document: it is for Prometheus, not a JSON client, and it is open
where every documented operation but /health* needs a token.
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import choose_encoder

from app.api.deps import StateDep
from app.db.models import RunStatus
from app.observability.metrics import ApiMetrics, DatabaseCounts, HubStats, ScrapeSnapshot
from app.observability.queries import count_rows

log = logging.getLogger(__name__)

router = APIRouter(tags=["metrics"], include_in_schema=False)

# procrastinate_job_status without `aborting` (unused since procrastinate 3.0).
JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")


def api_metrics(request: Request) -> ApiMetrics:
    """The app's registry, made by `create_app` (`app.state.metrics`)."""
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


@router.get("/metrics")
async def metrics(request: Request, state: StateDep) -> Response:
    """This process's metrics, with runs, queue jobs and workers counted now."""
    started = time.perf_counter()
    counts: DatabaseCounts | None
    try:
        counts = await count_rows(
            state.sessions, stalled_after_s=state.settings.stalled_after_seconds
        )
    except Exception as exc:  # a slow or absent database must not fail the scrape
        log.warning("metrics: database counts skipped (%s)", type(exc).__name__)
        counts = None
    hub = state.hub
    snapshot = ScrapeSnapshot(
        hub=None
        if hub is None
        else HubStats(len(hub.subscribers), hub.connected.is_set(), hub.reconnects),
        database=counts,
        database_seconds=time.perf_counter() - started,
        run_statuses=[s.value for s in RunStatus],
        job_statuses=JOB_STATUSES,
    )
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    body = encode(api_metrics(request).with_snapshot(snapshot))
    return Response(body, media_type=content_type)
