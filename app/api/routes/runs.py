"""/runs: submit, get, list, and poll a run's events."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status

from app.api.deps import OwnerDep, PrincipalDep, SessionDep, StateDep
from app.api.json_body import JsonBodyRoute
from app.api.read_route import CallerOnlyRoute
from app.api.state import ApiRuntime
from app.db.models import Run, RunStatus
from app.errors import NotFound
from app.runs import reads, repository
from app.runs.cancel import cancel_run
from app.runs.submit import submit_run
from app.schemas.problems import Problem
from app.schemas.runs import EventPage, RunCreate, RunOut, RunPage

router = APIRouter(prefix="/runs", tags=["runs"], route_class=JsonBodyRoute)

PROBLEMS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such run"},
    409: {"model": Problem, "description": "Conflict"},
    413: {"model": Problem, "description": "Body too large"},
    422: {"model": Problem, "description": "Invalid input; `errors` names the fields"},
    503: {"model": Problem, "description": "Database unavailable"},
}


def run_out(run: Run) -> RunOut:
    return RunOut.model_validate(run, from_attributes=True)


async def load_run(session: SessionDep, run_id: uuid.UUID, owner: str | None) -> Run:
    run = await repository.get_run(session, run_id, owner)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return run


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunOut,
    responses={
        200: {"model": RunOut, "description": "Idempotent replay"},
        **PROBLEMS,
        429: {"model": Problem, "description": "The owner has too many queued or running runs"},
    },
)
async def create_run(
    body: RunCreate,
    response: Response,
    state: StateDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
) -> RunOut:
    """Store the run and enqueue its job (queue `ml`) in one transaction."""
    run, created = await submit_run(
        state.sessions,
        state.queue,
        body,
        owner=principal.owner,
        queue_name=state.settings.queue_name,
        idempotency_key=idempotency_key,
        max_active_runs=state.settings.max_queued_runs_per_owner,
    )
    response.headers["Location"] = f"/runs/{run.id}"
    if not created:
        response.status_code = status.HTTP_200_OK
    return run_out(run)


# The reads answer with the JSON Postgres built (app/runs/reads.py): a Response returned as
# is, so FastAPI neither validates nor re-serialises it; `response_model` still documents it.


def json_response(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


@router.get("", response_model=RunPage, responses=PROBLEMS)
async def get_runs(
    state: StateDep,
    owner: OwnerDep,
    status_filter: Annotated[RunStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Runs, newest first; follow `next_cursor` for older pages."""
    body = await reads.runs_page_json(
        state.engine, owner=owner, status=status_filter, limit=limit, cursor=cursor
    )
    return json_response(body)


async def get_run(run_id: uuid.UUID, request: Request, owner: OwnerDep) -> Response:
    """The run, with its progress (trials done of the budget, best score, current step)."""
    state: ApiRuntime = request.app.state.cerebros  # the request, not StateDep: see below
    body = await reads.run_json(state.engine, run_id, owner)
    if body is None:
        raise NotFound(f"run {run_id} not found")
    return json_response(body)


# The hottest read: where FastAPI would only check the caller, it is answered without
# FastAPI's per-request dependency solving (app/api/read_route.py).
router.add_api_route(
    "/{run_id}",
    get_run,
    methods=["GET"],
    response_model=RunOut,
    responses=PROBLEMS,
    route_class_override=CallerOnlyRoute,
)


@router.get("/{run_id}/events", response_model=EventPage, responses=PROBLEMS)
async def get_run_events(
    run_id: uuid.UUID,
    state: StateDep,
    owner: OwnerDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Response:
    """The run's events with id > `after`, oldest first (for polling clients)."""
    body = await reads.events_page_json(state.engine, run_id, owner, after=after, limit=limit)
    if body is None:
        raise NotFound(f"run {run_id} not found")
    return json_response(body)


@router.post("/{run_id}/cancel", response_model=RunOut, responses=PROBLEMS)
async def cancel(run_id: uuid.UUID, state: StateDep, owner: OwnerDep) -> RunOut:
    """Cancel a queued run at once, or ask a running one to stop (within one epoch).

    Idempotent; a run that already succeeded or failed is a 409.
    """
    return run_out(await cancel_run(state.sessions, state.queue, run_id, owner=owner))
