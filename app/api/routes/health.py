"""Liveness, readiness and the workers' heartbeats (no token needed: no owner's data)."""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.deps import StateDep
from app.api.problems import PROBLEM_MEDIA_TYPE
from app.observability.health import Readiness, readiness, workers_health
from app.schemas.problems import Problem

router = APIRouter(tags=["health"])


class LiveOut(BaseModel):
    status: Literal["ok"] = "ok"


class CheckOut(BaseModel):
    ok: bool | None = Field(description="null: not checked (a check it needs failed)")
    detail: str


class ReadyOut(BaseModel):
    ready: bool
    failed: list[str] = Field(description="names of the checks that failed")
    checks: dict[str, CheckOut] = Field(description="database, migrations, event_hub")


class WorkerOut(BaseModel):
    id: int = Field(description="procrastinate_workers.id")
    last_heartbeat: datetime.datetime
    seconds_since_heartbeat: float
    jobs_running: int
    live: bool = Field(description="heartbeat within CEREBROS_STALLED_AFTER_SECONDS")


class WorkersOut(BaseModel):
    live: int
    required: int
    stalled_after_seconds: float
    workers: list[WorkerOut] = Field(description="freshest heartbeat first, at most 100")


NOT_READY: dict[int | str, dict[str, object]] = {
    503: {"model": Problem, "description": "Not ready: `failed` names the checks, `checks` why"}
}


@router.get("/health")
@router.get("/health/live")
async def live() -> LiveOut:
    """The process is up (no database access). `/health` is the same check."""
    return LiveOut()


@router.get("/health/ready", response_model=ReadyOut, responses=NOT_READY)
async def ready(state: StateDep) -> ReadyOut | JSONResponse:
    """Ready for traffic: database answers, migrations at this code's head, event hub listens.

    503 otherwise, a problem body naming the failed checks.
    """
    hub_connected = state.hub is not None and state.hub.connected.is_set()
    result = await readiness(state.sessions, hub_connected=hub_connected)
    body = _ready_out(result)
    if result.ready:
        return body
    detail = f"not ready: {', '.join(result.failed) or 'a check could not run'}"
    return _problem(503, "Not ready", detail, body.model_dump(mode="json"))


# Not in the OpenAPI document: like /metrics it is for operators' probes, and its 503 (too few
# live workers) depends on processes this API does not run, not on the request.
@router.get("/health/workers", response_model=WorkersOut, include_in_schema=False)
async def workers(
    state: StateDep,
    min_live: Annotated[
        int, Query(alias="min", ge=0, le=1000, description="live workers required for a 200")
    ] = 1,
) -> WorkersOut | JSONResponse:
    """The workers registered in the queue and whether each is live.

    503 when fewer than `min` are live (or the database cannot say).
    """
    stalled_after = state.settings.stalled_after_seconds
    try:
        health = await workers_health(state.sessions, stalled_after_s=stalled_after)
    except Exception:
        return _problem(
            503,
            "Not ready",
            "the database is unreachable: workers unknown",
            {"failed": ["database"], "live": 0, "required": min_live},
        )
    body = WorkersOut(
        live=health.live,
        required=min_live,
        stalled_after_seconds=stalled_after,
        workers=[
            WorkerOut(
                id=w.id,
                last_heartbeat=w.last_heartbeat,
                seconds_since_heartbeat=round(w.seconds_since_heartbeat, 3),
                jobs_running=w.jobs_running,
                live=health.is_live(w),
            )
            for w in health.workers
        ],
    )
    if health.live >= min_live:
        return body
    detail = f"{health.live} live worker(s), {min_live} required"
    return _problem(
        503, "Not ready", detail, {"failed": ["workers"], **body.model_dump(mode="json")}
    )


def _ready_out(result: Readiness) -> ReadyOut:
    return ReadyOut(
        ready=result.ready,
        failed=result.failed,
        checks={c.name: CheckOut(ok=c.ok, detail=c.detail) for c in result.checks},
    )


def _problem(status: int, title: str, detail: str, extra: dict[str, object]) -> JSONResponse:
    """A problem body (RFC 9457) with the check results as extension members."""
    body = {**extra, **Problem(title=title, status=status, detail=detail).model_dump()}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)
