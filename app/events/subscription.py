"""A stream's side of the hub: the items it receives and its bounded queue.

`HubEvent`s arrive in stream order (see `app.events.hub`), encoded once for every subscriber;
markers are control items: `RESYNC` (events were missed: catch up from the database),
`RUN_ENDED` (the followed run is final and all its events were offered) and `REVOKED` (the
stream's token was revoked).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

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


@dataclass(frozen=True)
class HubEvent:
    """A released event as subscribers receive it, encoded once for every subscriber.

    It carries its run's owner, its stream position and its JSON.
    """

    event: EventOut
    owner: str
    xid: int
    json: str

    @classmethod
    def from_row(cls, row: RunEvent, owner: str) -> HubEvent:
        event = EventOut.model_validate(row, from_attributes=True)
        return cls(event, owner, row.xid, event.model_dump_json())

    @property
    def position(self) -> EventPosition:
        return EventPosition(self.xid, self.event.id)


Item = HubEvent | Marker


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
    stream order, or markers. `run_ended` and `revoked` stay set even when an overflow drops
    the marker that announced them. `hub_position` is the hub's cursor when it subscribed:
    every released event after it will be offered (None: the hub has no cursor yet).
    """

    pattern: str | None = None
    run_id: uuid.UUID | None = None
    owner: str | None = None
    token_id: str | None = None
    max_queue: int = 1000
    hub_position: EventPosition | None = None
    queue: asyncio.Queue[Item] = field(init=False)
    matcher: GlobPattern | None = field(init=False)
    overflows: int = field(default=0, init=False)
    run_ended: bool = field(default=False, init=False)
    revoked: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.max_queue)
        # ValueError now, not at the first event.
        self.matcher = compile_pattern(self.pattern) if self.pattern is not None else None

    def wants_name(self, name: str) -> bool:
        return self.matcher is None or self.matcher.match(name)

    def wants(self, item: HubEvent) -> bool:
        if self.run_id is not None and item.event.run_id != self.run_id:
            return False
        if self.owner is not None and item.owner != self.owner:
            return False
        return self.wants_name(item.event.name)

    def offer(self, item: Item) -> None:
        """Queue `item` without ever waiting; on overflow, drop the backlog and ask to resync."""
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

    async def get(self, timeout: float | None = None) -> Item | None:
        """The next item, or None after `timeout` seconds without one."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


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
