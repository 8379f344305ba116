"""Server-Sent Event streams: one run's events, and every run's (for dashboards).

Both take the bearer token, or a stream ticket (`?ticket=`, from `POST /events/tickets`)
for browsers' EventSource, which cannot send headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncGenerator, Callable
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Receive, Scope, Send

from app.api.deps import StateDep, StreamOwnerDep, StreamPrincipalDep
from app.api.problems import problem_response
from app.api.state import ApiState
from app.auth.tokens import Principal, TokenNotFound, find_token
from app.errors import CerebrosError, InvalidInput, NotFound, Unauthorized
from app.events.follower import follow_batches
from app.events.hub import RevokedTokens
from app.events.patterns import compile_pattern
from app.events.subscription import HubEvent, LiveEvent, Subscription, sse_frame
from app.runs import repository
from app.schemas.problems import Problem

log = logging.getLogger(__name__)

router = APIRouter(tags=["events"])

PING_SECONDS = 15  # a keep-alive comment after this long without a write
PING_FRAME: Final = b": ping\n\n"
SEND_TIMEOUT_SECONDS = 30  # a client that does not read for this long is dropped
CHECK_SECONDS = 5  # how often a stream's timer looks at both
END_EVENT: Final = "stream.end"  # control event (no id): complete, do not reconnect
RECONNECT_EVENT: Final = "stream.reconnect"  # control event (no id): reconnect, Last-Event-ID
RECONNECT_AFTER_MS = 2000
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


def control_frame(name: str, **data: object) -> bytes:
    """A control event: no `id:`, so a client's Last-Event-ID stays on its last event."""
    return sse_frame(json.dumps(data), name)


async def sse_bytes(
    batches: AsyncGenerator[list[HubEvent | LiveEvent]],
) -> AsyncGenerator[bytes]:
    """Each batch as one chunk of SSE frames, then one control event saying how it ended.

    The frames were encoded once by the hub (`HubEvent.sse`): joining them is all the work
    done per client. An empty batch is a keep-alive comment. A failure mid-stream (the
    database went away, the pool is exhausted) ends the stream with `stream.reconnect`: the
    client resumes with Last-Event-ID and misses nothing.
    """
    try:
        async for batch in batches:
            if len(batch) == 1:
                yield batch[0].sse
            else:
                yield b"".join(item.sse for item in batch) if batch else PING_FRAME
    except Unauthorized:
        yield control_frame(END_EVENT, reason="token_revoked")
        return
    except Exception as exc:
        if isinstance(exc, CerebrosError) and exc.retryable:
            reason = str(exc).splitlines()[0][:200] if str(exc) else ""
            log.warning("event stream interrupted: %s: %s", type(exc).__name__, reason)
        else:
            log.exception("event stream failed")
        yield control_frame(RECONNECT_EVENT, reason="server_error", retry_ms=RECONNECT_AFTER_MS)
        return
    finally:
        await batches.aclose()  # leave the hub now, not when the generator is collected
    yield control_frame(END_EVENT, reason="complete")


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class StreamResponse(StreamingResponse):
    """An SSE response written by its request's own task, with no task or timer per event.

    The request's task awaits the stream's next batch and writes it (`frames`); one task per
    stream waits for the client to go away and one timer per stream, every
    `CHECK_SECONDS`, queues a keep-alive after `PING_SECONDS` of silence and drops a client
    that has not taken a write for `SEND_TIMEOUT_SECONDS`. `on_close` is called however it
    ends (also if never iterated).
    """

    media_type = "text/event-stream"

    def __init__(self, on_close: Callable[[], None]) -> None:
        super().__init__(
            _no_frames(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        self.on_close = on_close
        self.frames: AsyncGenerator[bytes] = _no_frames()
        self.subscription: Subscription | None = None
        self.sending_since = 0.0  # loop time a write began that has not returned yet
        self.last_sent = 0.0
        self.cut: str | None = None  # why the stream was ended from outside
        self._pump: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def attach(self, subscription: Subscription) -> None:
        """Learn the stream's subscription (for its keep-alives)."""
        self.subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        self._pump = asyncio.current_task()
        watcher = loop.create_task(_until_disconnect(receive))
        watcher.add_done_callback(self._on_disconnect)
        self._timer = loop.call_later(CHECK_SECONDS, self._check)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            self.last_sent = loop.time()
            async for chunk in self.frames:
                self.sending_since = loop.time()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self.last_sent = loop.time()
                self.sending_since = 0.0
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if self.cut is None or self._pump is None or self._pump.uncancel() > 0:
                raise
            if self.cut == "stalled":
                log.warning(
                    "event stream dropped: the client read nothing for %ss", SEND_TIMEOUT_SECONDS
                )
        finally:
            self._timer.cancel()
            watcher.remove_done_callback(self._on_disconnect)
            watcher.cancel()
            await self.frames.aclose()
            self.on_close()

    def _end(self, reason: str) -> None:
        if self.cut is None and self._pump is not None and not self._pump.done():
            self.cut = reason
            self._pump.cancel()

    def _on_disconnect(self, watcher: asyncio.Task[None]) -> None:
        if not watcher.cancelled():
            watcher.exception()  # retrieved: whatever ended the wait, the client is gone
            self._end("disconnected")

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.sending_since and now - self.sending_since > SEND_TIMEOUT_SECONDS:
            self._end("stalled")
            return
        if now - self.last_sent >= PING_SECONDS and self.subscription is not None:
            self.subscription.tick()
        self._timer = loop.call_later(CHECK_SECONDS, self._check)


async def _no_frames() -> AsyncGenerator[bytes]:
    return
    yield


def open_stream(
    state: ApiState,
    principal: Principal,
    follow: Callable[[Callable[[Subscription], None]], AsyncGenerator[list[HubEvent | LiveEvent]]],
) -> StreamResponse | JSONResponse:
    """The SSE response, or a 429 when the owner already has as many streams as allowed.

    `follow` starts the stream's batches, handing its subscription to the callback it gets.
    """
    slots, limit = state.hub.streams, state.settings.max_streams_per_owner
    if not state.settings.auth_enabled:
        response = StreamResponse(on_close=lambda: None)
    elif not slots.take(principal.owner, limit):
        return problem_response(
            429,
            "Too many streams",
            f"at most {limit} open event streams per owner (CEREBROS_MAX_STREAMS_PER_OWNER)",
            headers={"Retry-After": str(STREAM_RETRY_AFTER_SECONDS)},
        )
    else:
        response = StreamResponse(on_close=lambda: slots.give_back(principal.owner))
    response.frames = sse_bytes(follow(response.attach))
    return response


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
        lambda attach: follow_batches(
            state.hub,
            run_id=run_id,
            pattern=pattern,
            after=start,
            token_id=principal.token_id,
            on_subscribed=attach,
        ),
    )


@router.get(
    "/events/stream",
    response_class=StreamResponse,
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
        lambda attach: follow_batches(
            state.hub,
            owner=owner,
            pattern=pattern,
            after=start,
            token_id=principal.token_id,
            on_subscribed=attach,
        ),
    )
