"""Server-Sent Event streams: one run's events, and every run's (for dashboards)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.deps import OwnerDep, StateDep
from app.errors import InvalidInput, NotFound
from app.events.hub import follow_events
from app.events.patterns import compile_pattern
from app.runs import repository
from app.schemas.problems import Problem
from app.schemas.runs import EventOut

router = APIRouter(tags=["events"])

PING_SECONDS = 15
SEND_TIMEOUT_SECONDS = 30  # a client that does not read for this long is dropped
END_EVENT = "stream.end"  # control event (no id): the stream is complete, do not reconnect

PROBLEMS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No such run"},
    422: {"model": Problem, "description": "Invalid pattern, after or Last-Event-ID"},
}
STREAM_RESPONSE: dict[int | str, dict[str, object]] = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "SSE: `id:` event id, `event:` event name, `data:` the event as JSON; "
        f"a final `{END_EVENT}` event (no id) when the stream is complete.",
    }
}

PatternQuery = Annotated[
    str | None,
    Query(max_length=200, description="Glob over event names: `*` one segment, `**` any."),
]
AfterQuery = Annotated[
    int | None, Query(ge=0, le=2**63 - 1, description="Send events with id > after.")
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
    if not last_event_id.isdigit():
        raise InvalidInput("Last-Event-ID must be an event id", field="Last-Event-ID")
    return int(last_event_id)


async def as_sse(events: AsyncIterator[EventOut]) -> AsyncIterator[ServerSentEvent]:
    async for event in events:
        yield ServerSentEvent(data=event.model_dump_json(), id=str(event.id), event=event.name)
    yield ServerSentEvent(data='{"reason": "complete"}', event=END_EVENT)


def sse_response(events: AsyncIterator[EventOut]) -> EventSourceResponse:
    return EventSourceResponse(
        as_sse(events),
        ping=PING_SECONDS,
        send_timeout=SEND_TIMEOUT_SECONDS,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/runs/{run_id}/events/stream",
    response_class=EventSourceResponse,
    responses={**STREAM_RESPONSE, **PROBLEMS},
)
async def stream_run_events(
    run_id: uuid.UUID,
    state: StateDep,
    owner: OwnerDep,
    pattern: PatternQuery = None,
    after: AfterQuery = None,
    last_event_id: LastEventIdHeader = None,
) -> EventSourceResponse:
    """The run's events (history, then live); the stream ends when the run is over.

    Reconnect with `Last-Event-ID` (or `after`) to resume with no gap and no duplicate.
    """
    pattern = checked_pattern(pattern)
    start = resume_point(after, last_event_id)
    async with state.sessions() as session:
        if await repository.get_run(session, run_id, owner) is None:
            raise NotFound(f"run {run_id} not found")
    return sse_response(
        follow_events(state.hub, state.sessions, run_id=run_id, pattern=pattern, after=start)
    )


@router.get(
    "/events/stream",
    response_class=EventSourceResponse,
    responses={**STREAM_RESPONSE, 422: PROBLEMS[422]},
)
async def stream_all_events(
    state: StateDep,
    owner: OwnerDep,
    pattern: PatternQuery = None,
    after: AfterQuery = None,
    last_event_id: LastEventIdHeader = None,
) -> EventSourceResponse:
    """Live events of all runs (e.g. `pattern=cerebros.nas.run.*`), from now or `after`."""
    pattern = checked_pattern(pattern)
    start = resume_point(after, last_event_id)
    # Non-admins see only their own runs' events (owner None: an admin sees every run's).
    return sse_response(
        follow_events(state.hub, state.sessions, owner=owner, pattern=pattern, after=start)
    )
