"""A stream's side of the hub: the items it receives and its bounded queue.

`HubEvent`s arrive in stream order (see `app.events.hub`), encoded once for every subscriber:
the SSE frame (`sse`, and `chunk`, the same as an HTTP/1.1 chunk) is built when the hub first
sees the event and the same bytes go to every stream; a caught-up stream takes them straight
from the hub's fan-out (`Subscription.sink`). `LiveEvent`s are live-only notifications (no row,
no event id): they are sent as they arrive, outside the stream order, as SSE events without an
`id:` line. Markers are control items: `RESYNC` (events were missed: catch up from the
database), `RUN_ENDED` (the followed run is final and all its events were offered), `REVOKED`
(the stream's token was revoked) and `TICK` (nothing happened for a while: the transport may
send a keep-alive).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from app.db.models import RunEvent
from app.events.patterns import GlobPattern, compile_pattern
from app.events.store import EventPosition
from app.schemas.runs import EventOut


class Marker:
    """A control item in a subscriber's queue (compared by identity)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


RESYNC: Final = Marker("RESYNC")  # events may have been missed: re-read the database
RUN_ENDED: Final = Marker("RUN_ENDED")  # the run is final and all its events were offered
REVOKED: Final = Marker("REVOKED")  # the stream's token was revoked
TICK: Final = Marker("TICK")  # a keep-alive moment (queued by the transport, not the hub)


def sse_frame(data: str, event: str, event_id: int | None = None) -> bytes:
    """One SSE event: `id:` (when given), `event:`, `data:` (one line of JSON), blank line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


def http_chunk(data: bytes) -> bytes:
    """`data` as one chunk of an HTTP/1.1 chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


@dataclass(frozen=True)
class HubEvent:
    """A released event as subscribers receive it, encoded once for every subscriber.

    It carries its run's owner, its stream position, its JSON (the API's `EventOut`) and its
    SSE frame.
    """

    event: EventOut
    owner: str
    xid: int
    json: str
    sse: bytes = field(init=False, repr=False, compare=False)
    chunk: bytes = field(init=False, repr=False, compare=False)  # `sse` as an HTTP chunk
    position: EventPosition = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sse", sse_frame(self.json, self.event.name, self.event.id))
        object.__setattr__(self, "chunk", http_chunk(self.sse))
        object.__setattr__(self, "position", EventPosition(self.xid, self.event.id))

    @classmethod
    def from_row(cls, row: RunEvent, owner: str) -> HubEvent:
        event = EventOut.model_validate(row, from_attributes=True)
        return cls(event, owner, row.xid, event.model_dump_json())

    @classmethod
    def from_notification(cls, body: dict[str, Any]) -> HubEvent:
        """The event of a `cerebros_events` notification that carries it whole."""
        event = EventOut.model_validate(body)
        return cls(event, str(body["owner"]), int(body["xid"]), event.model_dump_json())


@dataclass(frozen=True)
class LiveEvent:
    """A live-only notification: no row, no event id, never replayed.

    Its JSON is the event without `id` (run_id, name, payload, created_at, and `live: true`).
    """

    run_id: uuid.UUID
    owner: str
    name: str
    json: str
    sse: bytes = field(init=False, repr=False, compare=False)
    chunk: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sse", sse_frame(self.json, self.name))
        object.__setattr__(self, "chunk", http_chunk(self.sse))

    @classmethod
    def from_notification(cls, body: dict[str, Any]) -> LiveEvent:
        run_id = uuid.UUID(str(body["run_id"]))
        data = {
            "run_id": str(run_id),
            "name": str(body["name"]),
            "payload": body.get("payload") or {},
            "created_at": body.get("created_at"),
            "live": True,
        }
        text = json.dumps(data, separators=(",", ":"))
        return cls(run_id, str(body["owner"]), str(body["name"]), text)


Item = HubEvent | LiveEvent | Marker
# Writes an event to the stream's client at once; False when it cannot take it now.
Sink = Callable[[HubEvent | LiveEvent], bool]


@dataclass(frozen=True)
class HubPage:
    """`event_sql.EventPage` with its rows turned into `HubEvent`s."""

    events: list[HubEvent]
    horizon: int
    full: bool
    held_back: bool


@dataclass(eq=False)
class Subscription:
    """One subscriber: its filter and its bounded queue.

    `pattern` filters event names (glob; None: all), `run_id` one run, `owner` one owner's
    runs (None: any), `token_id` the token to watch for revocation. Items are `HubEvent`s in
    stream order, `LiveEvent`s, or markers. `run_ended` and `revoked` stay set even when an
    overflow drops the marker that announced them. `hub_position` is the hub's cursor when it
    subscribed: every released event after it will be offered (None: the hub has no cursor
    yet).
    """

    pattern: str | None = None
    run_id: uuid.UUID | None = None
    owner: str | None = None
    token_id: str | None = None
    max_queue: int = 1000
    hub_position: EventPosition | None = None
    queue: asyncio.Queue[Item] = field(init=False)
    matcher: GlobPattern | None = field(init=False)
    takes_all: bool = field(init=False)
    overflows: int = field(default=0, init=False)
    run_ended: bool = field(default=False, init=False)
    revoked: bool = field(default=False, init=False)
    sink: Sink | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.max_queue)
        # ValueError now, not at the first event.
        self.matcher = compile_pattern(self.pattern) if self.pattern is not None else None
        self.takes_all = self.owner is None and self.matcher is None  # of its run(s)

    def wants_name(self, name: str) -> bool:
        return self.matcher is None or self.matcher.match(name)

    def wants(self, item: HubEvent | LiveEvent) -> bool:
        run_id, name = (
            (item.event.run_id, item.event.name)
            if isinstance(item, HubEvent)
            else (item.run_id, item.name)
        )
        if self.run_id is not None and run_id != self.run_id:
            return False
        return self.accepts(item.owner, name)

    def accepts(self, owner: str, name: str) -> bool:
        """Whether an event of its run(s), of `owner`'s run and named `name`, is wanted."""
        if self.owner is not None and owner != self.owner:
            return False
        return self.matcher is None or self.matcher.match(name)

    def offer(self, item: Item) -> None:
        """Hand `item` over without ever waiting.

        While the stream has a `sink` (it is caught up and its queue is empty), events go
        straight to its client; a marker, or an event the client cannot take now, takes the
        sink away and is queued: the stream's own task writes from then on, in order. On
        overflow the backlog is dropped and the stream asked to resync.
        """
        sink = self.sink
        if sink is not None:
            if not isinstance(item, Marker) and sink(item):
                return
            self.sink = None
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflows += 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)

    def end_run(self) -> None:
        self.run_ended = True
        self.offer(RUN_ENDED)

    def revoke(self) -> None:
        self.revoked = True
        self.offer(REVOKED)

    def tick(self) -> None:
        """Ask the stream to show it is alive (queued only when nothing else is waiting)."""
        if self.queue.empty():
            self.offer(TICK)

    async def get(self, timeout: float | None = None) -> Item | None:
        """The next item, or None after `timeout` seconds without one."""
        if timeout is None:
            return await self.queue.get()
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    async def get_batch(self) -> list[Item]:
        """Everything queued, waiting for the first item (no timer, no task)."""
        items = [await self.queue.get()]
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items


class StreamSlots:
    """Open streams per owner in this process, against a per-owner limit."""

    def __init__(self) -> None:
        self.open: Counter[str] = Counter()

    def take(self, owner: str, limit: int) -> bool:
        if self.open[owner] >= limit:
            return False
        self.open[owner] += 1
        return True

    def give_back(self, owner: str) -> None:
        self.open[owner] -= 1
        if self.open[owner] <= 0:
            del self.open[owner]
