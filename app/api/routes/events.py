"""Server-Sent Event streams: one run's events, and every run's (for dashboards).

Both take the bearer token, or a stream ticket (`?ticket=`, from `POST /events/tickets`)
for browsers' EventSource, which cannot send headers.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Final

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.deps import StateDep, StreamOwnerDep, StreamPrincipalDep
from app.api.problems import problem_response
from app.api.sse import END_EVENT, RECONNECT_EVENT, Follow, StreamResponse
from app.api.state import ApiState
from app.auth.tokens import Principal, TokenNotFound, find_token
from app.errors import InvalidInput, NotFound
from app.events.follower import follow_batches
from app.events.hub import RevokedTokens
from app.events.patterns import compile_pattern
from app.runs import repository
from app.schemas.problems import Problem

router = APIRouter(tags=["events"])

STREAM_RETRY_AFTER_SECONDS = 5  # Retry-After of the 429 for too many open streams
MAX_EVENT_ID: Final = 2**63 - 1  # event ids are bigint

PROBLEMS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such run"},
    422: {"model": Problem, "description": "Invalid pattern, after or Last-Event-ID"},
    429: {"model": Problem, "description": "The owner has too many open streams"},
}
STREAM_RESPONSE: dict[int | str, dict[str, object]] = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "SSE: `id:` event id, `event:` event name, `data:` the event as JSON; "
        "live-only progress (e.g. `cerebros.nas.trial.epoch`) has no `id:` (its JSON has no "
        "`id` and `live: true`) and is never replayed on reconnection; "
        f"a final `{END_EVENT}` event (no id) when the stream is complete (`reason`: "
        f"`complete` or `token_revoked`), or `{RECONNECT_EVENT}` (no id) when the server "
        "could not go on: reconnect with `Last-Event-ID`.",
    }
}

PatternQuery = Annotated[
    str | None,
    Query(max_length=200, description="Glob over event names: `*` one segment, `**` any."),
]
AfterQuery = Annotated[
    int | None, Query(ge=0, le=MAX_EVENT_ID, description="Send events after this event id.")
]
LastEventIdHeader = Annotated[
    str | None, Header(alias="Last-Event-ID", max_length=20, pattern=r"^[0-9]*$")
]


def checked_pattern(pattern: str | None) -> str | None:
    if pattern is None:
        return None
    try:
        compile_pattern(pattern)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="pattern") from exc
    return pattern


def resume_point(after: int | None, last_event_id: str | None) -> int | None:
    """Where to resume: the Last-Event-ID header (set by reconnecting clients) wins."""
    if last_event_id is None or last_event_id == "":
        return after
    if not last_event_id.isdigit() or int(last_event_id) > MAX_EVENT_ID:
        raise InvalidInput("Last-Event-ID must be an event id", field="Last-Event-ID")
    return int(last_event_id)


def open_stream(
    state: ApiState, principal: Principal, follow: Follow
) -> StreamResponse | JSONResponse:
    """The SSE response, or a 429 when the owner already has as many streams as allowed."""
    slots, limit = state.hub.streams, state.settings.max_streams_per_owner
    if not state.settings.auth_enabled:
        return StreamResponse(follow, on_close=lambda: None)
    if not slots.take(principal.owner, limit):
        return problem_response(
            429,
            "Too many streams",
            f"at most {limit} open event streams per owner (CEREBROS_MAX_STREAMS_PER_OWNER)",
            headers={"Retry-After": str(STREAM_RETRY_AFTER_SECONDS)},
        )
    return StreamResponse(follow, on_close=lambda: slots.give_back(principal.owner))


def token_revocations(sessions: async_sessionmaker[AsyncSession]) -> RevokedTokens:
    """The hub's batch check of open streams' tokens: which are revoked or gone."""

    async def revoked(token_ids: frozenset[str]) -> frozenset[str]:
        gone: set[str] = set()
        async with sessions() as session:
            for token_id in token_ids:
                try:
                    token = await find_token(session, token_id)
                except TokenNotFound:
                    gone.add(token_id)
                    continue
                if token.revoked_at is not None:
                    gone.add(token_id)
        return frozenset(gone)

    return revoked


@router.get(
    "/runs/{run_id}/events/stream",
    response_class=StreamResponse,
    status_code=200,  # StreamResponse takes none: OpenAPI reads the route's
    responses={**STREAM_RESPONSE, **PROBLEMS},
)
async def stream_run_events(
    run_id: uuid.UUID,
    state: StateDep,
    owner: StreamOwnerDep,
    principal: StreamPrincipalDep,
    pattern: PatternQuery = None,
    after: AfterQuery = None,
    last_event_id: LastEventIdHeader = None,
) -> Response:
    """The run's events (history, then live); the stream ends when the run is over.

    Reconnect with `Last-Event-ID` (or `after`) to resume with no gap and no duplicate.
    """
    pattern = checked_pattern(pattern)
    start = resume_point(after, last_event_id)
    async with state.sessions() as session:
        if await repository.get_run(session, run_id, owner) is None:
            raise NotFound(f"run {run_id} not found")
    return open_stream(
        state,
        principal,
        lambda attach, write_now: follow_batches(
            state.hub,
            run_id=run_id,
            pattern=pattern,
            after=start,
            token_id=principal.token_id,
            on_subscribed=attach,
            write_now=write_now,
        ),
    )


@router.get(
    "/events/stream",
    response_class=StreamResponse,
    status_code=200,  # StreamResponse takes none: OpenAPI reads the route's
    responses={**STREAM_RESPONSE, 422: PROBLEMS[422], 429: PROBLEMS[429]},
)
async def stream_all_events(
    state: StateDep,
    owner: StreamOwnerDep,
    principal: StreamPrincipalDep,
    pattern: PatternQuery = None,
    after: AfterQuery = None,
    last_event_id: LastEventIdHeader = None,
) -> Response:
    """Live events of all runs (e.g. `pattern=cerebros.nas.run.*`), from now or `after`."""
    pattern = checked_pattern(pattern)
    start = resume_point(after, last_event_id)
    # Non-admins see only their own runs' events (owner None: an admin sees every run's).
    return open_stream(
        state,
        principal,
        lambda attach, write_now: follow_batches(
            state.hub,
            owner=owner,
            pattern=pattern,
            after=start,
            token_id=principal.token_id,
            on_subscribed=attach,
            write_now=write_now,
        ),
    )
