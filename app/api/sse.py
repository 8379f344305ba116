"""The SSE transport: a stream's batches as bytes, written with no task or timer per event.

A stream's events were encoded once by the hub (`HubEvent.sse`, and `.chunk`, the same as an
HTTP/1.1 chunk). The request's own task writes what the stream yields (history pages,
control events, keep-alives). Once the stream is caught up, and when the server is uvicorn
(httptools) sending a chunked body, the hub's fan-out writes each event's chunk straight to
the client's transport (`StreamResponse.write_now`): the same bytes object for every client,
no task switch, no ASGI message. A client whose transport holds more than
`DIRECT_BUFFER_LIMIT` unsent bytes is handed back to its task, which waits for it (and drops
it after `SEND_TIMEOUT_SECONDS`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any, Final, cast

from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import CerebrosError, Unauthorized
from app.events.subscription import HubEvent, LiveEvent, Sink, Subscription, sse_frame

log = logging.getLogger(__name__)

PING_SECONDS = 15  # a keep-alive comment after this long without a write
PING_FRAME: Final = b": ping\n\n"
SEND_TIMEOUT_SECONDS = 30  # a client that does not read for this long is dropped
CHECK_SECONDS = 5  # how often a stream's timer looks at both
DIRECT_BUFFER_LIMIT: Final = 256 * 1024  # unsent bytes beyond which the fan-out stops writing
END_EVENT: Final = "stream.end"  # control event (no id): complete, do not reconnect
RECONNECT_EVENT: Final = "stream.reconnect"  # control event (no id): reconnect, Last-Event-ID
RECONNECT_AFTER_MS = 2000
SERVER_SEND: Final = "cerebros.server_send"  # scope key: the server's own `send`

# Starts a stream's batches: given the callback that learns its subscription, and the direct
# write (None: every write goes through the response's task).
Follow = Callable[
    [Callable[[Subscription], None], Sink | None], AsyncGenerator[list[HubEvent | LiveEvent]]
]


def control_frame(name: str, **data: object) -> bytes:
    """A control event: no `id:`, so a client's Last-Event-ID stays on its last event."""
    return sse_frame(json.dumps(data), name)


async def sse_bytes(
    batches: AsyncGenerator[list[HubEvent | LiveEvent]],
) -> AsyncGenerator[bytes]:
    """Each batch as one chunk of SSE frames, then one control event saying how it ended.

    Joining the frames the hub encoded is all the work done per client. An empty batch is a
    keep-alive comment. A failure mid-stream (the database went away, the pool is exhausted)
    ends the stream with `stream.reconnect`: the client resumes with Last-Event-ID and
    misses nothing.
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


def server_transport(scope: Scope) -> asyncio.WriteTransport | None:
    """The client's transport when the server is uvicorn (httptools) sending a chunked body.

    Known only through the server's own `send` (`SERVER_SEND`, see `install_server_send`):
    the bound method of uvicorn's request cycle. Anything else (another server, a test
    client, HTTP/1.0 without chunks): None, and every write goes through `send`.
    """
    cycle = getattr(scope.get(SERVER_SEND), "__self__", None)
    if type(cycle).__module__ != "uvicorn.protocols.http.httptools_impl":
        return None
    if getattr(cycle, "chunked_encoding", None) is not True or getattr(cycle, "disconnected", True):
        return None
    transport = getattr(cycle, "transport", None)
    # uvloop's transports are not asyncio.WriteTransport subclasses: what is used is checked.
    needed = ("write", "is_closing", "get_write_buffer_size")
    if not all(callable(getattr(transport, name, None)) for name in needed):
        return None
    return cast(asyncio.WriteTransport, transport)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _no_frames() -> AsyncGenerator[bytes]:
    return
    yield


class StreamResponse(StreamingResponse):
    """An SSE response with no task, timer or ASGI message per event (see the module).

    The request's task writes what the stream yields; one task per stream waits for the
    client to go away and one timer per stream, every `CHECK_SECONDS`, queues a keep-alive
    after `PING_SECONDS` of silence and drops a client that has not taken a write for
    `SEND_TIMEOUT_SECONDS`. `on_close` is called however it ends (also if never iterated).
    """

    media_type = "text/event-stream"

    def __init__(self, follow: Follow, on_close: Callable[[], None]) -> None:
        super().__init__(
            _no_frames(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        self.follow = follow
        self.on_close = on_close
        self.subscription: Subscription | None = None
        self.sending_since = 0.0  # loop time a write began that has not returned yet
        self.last_sent = 0.0
        self.cut: str | None = None  # why the stream was ended from outside
        self._loop: asyncio.AbstractEventLoop | None = None
        self._now: Callable[[], float] = lambda: 0.0
        self._transport: asyncio.WriteTransport | None = None
        self._pump: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def attach(self, subscription: Subscription) -> None:
        """Learn the stream's subscription (for its keep-alives)."""
        self.subscription = subscription

    def write_now(self, item: HubEvent | LiveEvent) -> bool:
        """Write `item` to the client from the hub's fan-out; False: let the task do it."""
        transport = self._transport
        if (
            transport is None
            or transport.is_closing()
            or transport.get_write_buffer_size() > DIRECT_BUFFER_LIMIT
        ):
            return False
        transport.write(item.chunk)
        self.last_sent = self._now()
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._now = loop.time
        self._pump = asyncio.current_task()
        watcher = loop.create_task(_until_disconnect(receive))
        watcher.add_done_callback(self._on_disconnect)
        self._timer = loop.call_later(CHECK_SECONDS, self._check)
        frames = _no_frames()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            self.last_sent = loop.time()
            self._transport = server_transport(scope)
            direct = self.write_now if self._transport is not None else None
            frames = sse_bytes(self.follow(self.attach, direct))
            async for chunk in frames:
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
            self._transport = None
            await frames.aclose()
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
        assert self._loop is not None
        now = self._loop.time()
        if self.sending_since and now - self.sending_since > SEND_TIMEOUT_SECONDS:
            self._end("stalled")
            return
        if now - self.last_sent >= PING_SECONDS and self.subscription is not None:
            self.subscription.tick()
        self._timer = self._loop.call_later(CHECK_SECONDS, self._check)


class ServerSend:
    """Outermost ASGI wrapper: puts the server's own `send` in the scope (`SERVER_SEND`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[SERVER_SEND] = send
        await self.app(scope, receive, send)


def install_server_send(app: Starlette) -> None:
    """Wrap `app`'s whole middleware stack (built at its first request) in `ServerSend`.

    Call it after every other wrapper of the stack is installed, so that it is outermost.
    """
    build = app.build_middleware_stack

    def build_with_server_send() -> ASGIApp:
        return ServerSend(build())

    app.build_middleware_stack = build_with_server_send  # type: ignore[method-assign]
