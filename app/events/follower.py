"""One event stream: history from the database, then the hub's live events, in stream order.

A stream keeps its position (xid, id) and skips anything at or before it, so history and live
events that overlap are sent once. It reads the database (the normal pool) when it starts and
after a `RESYNC` (its queue overflowed), and never while live: the hub brings the events and
tells it when its run ended or its token was revoked.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Final

from app.errors import Unauthorized
from app.events.hub import EventHub
from app.events.store import STREAM_START
from app.events.subscription import (
    RESYNC,
    REVOKED,
    RUN_ENDED,
    TICK,
    HubEvent,
    Item,
    LiveEvent,
    Sink,
    Subscription,
)

PAGE_SIZE: Final = 1000


class _Follower:
    """The position of one stream and its reads of the database."""

    def __init__(
        self, hub: EventHub, sub: Subscription, run_id: uuid.UUID | None, owner: str | None
    ) -> None:
        self.hub = hub
        self.sub = sub
        self.run_id = run_id
        self.owner = owner
        self.position = STREAM_START
        self.horizon = 0  # of the last catch-up: transactions below it had all ended

    def sink(self, write: Sink) -> Sink:
        """`write` for the hub's fan-out, keeping the position (the stream is caught up)."""

        def write_event(item: HubEvent | LiveEvent) -> bool:
            if isinstance(item, LiveEvent):
                return write(item)
            if item.position <= self.position:
                return True  # already sent
            if not write(item):
                return False
            self.position = item.position
            return True

        return write_event

    def accept(self, item: HubEvent) -> bool:
        """Advance past `item`; True when it should be sent."""
        if item.position <= self.position:
            return False  # already sent (history and live overlap)
        self.position = item.position
        return self.sub.wants_name(item.event.name)

    async def start_at(self, after: int | None) -> bool:
        """Set the starting position; True when the hub alone will bring what follows."""
        if after is not None:
            self.position = await self.hub.store.position_of(after)
        elif self.run_id is None:
            if self.sub.hub_position is not None:
                self.position = self.sub.hub_position
                return True  # "from now": the hub offers everything after its cursor
            self.position, _ = await self.hub.store.frontier()
        return False

    async def catch_up(self) -> AsyncIterator[list[HubEvent | LiveEvent]]:
        """Everything released after the position, from the database, page by page."""
        while True:
            page = await self.hub.store.page(
                self.position, limit=PAGE_SIZE, run_id=self.run_id, owner=self.owner
            )
            self.horizon = page.horizon
            sent: list[HubEvent | LiveEvent] = [item for item in page.events if self.accept(item)]
            if sent:
                yield sent
            if not page.full:
                return


async def follow_batches(
    hub: EventHub,
    *,
    run_id: uuid.UUID | None = None,
    owner: str | None = None,
    pattern: str | None = None,
    after: int | None = None,
    token_id: str | None = None,
    on_subscribed: Callable[[Subscription], None] | None = None,
    write_now: Sink | None = None,
) -> AsyncGenerator[list[HubEvent | LiveEvent]]:
    """Events after event id `after` (history from the database), then live ones, in batches.

    The order is (xid, id) (see app/events/hub.py): the same on every connection, so a
    stream resumed from its last event id has no gap and no duplicate. With `run_id`: the
    whole history when `after` is None, and the iteration ends once the run is final and
    all its events were sent. Without `run_id`: every run's events (optionally one owner's),
    from now on unless `after` is given; it never ends by itself. Raises `Unauthorized`
    once the hub finds `token_id` revoked.

    A batch is what was waiting when the stream woke (a page of history, or every item the
    hub queued meanwhile): one write for the transport. `LiveEvent`s (no id, never
    replayed) come as they arrive. An empty batch answers `Subscription.tick`: nothing to
    send, a moment for a keep-alive. `on_subscribed` gets the subscription first.

    With `write_now` (the transport's direct write), a stream that is caught up and has
    nothing queued lets the hub write each event to its client from the fan-out itself: the
    batches are then only the rest (history, markers, what a busy client could not take).
    Everything yielded before has been written by then, so the order holds.
    """
    async with hub.subscribe(pattern, run_id=run_id, owner=owner, token_id=token_id) as sub:
        if on_subscribed is not None:
            on_subscribed(sub)
        follower = _Follower(hub, sub, run_id, owner)
        settled_at: int | None = None
        if run_id is not None:
            ended = await hub.store.final_runs([run_id])
            if run_id in ended.run_ids:
                settled_at = ended.settled_at
        read_history = not await follower.start_at(after)
        queued: deque[Item] = deque()
        while True:
            if sub.revoked:
                raise Unauthorized("the bearer token was revoked", error="invalid_token")
            if read_history:
                # The hub's end marker may have been dropped by an overflow; its flag stays.
                run_ended = sub.run_ended
                async for page in follower.catch_up():
                    yield page
                if run_ended:
                    return
                if run_id is not None and settled_at is not None:
                    if follower.horizon >= settled_at:
                        return  # final, and every transaction that wrote its events ended
                    hub.expect_end(run_id, settled_at)  # some are held back: the hub tells
                    settled_at = None
                read_history = False
            if not queued:
                if write_now is not None and sub.queue.empty():
                    sub.sink = follower.sink(write_now)
                try:
                    queued.extend(await sub.get_batch())
                finally:
                    sub.sink = None
            batch: list[HubEvent | LiveEvent] = []
            ticked = False
            while queued:
                item = queued.popleft()
                if isinstance(item, HubEvent):
                    if follower.accept(item):
                        batch.append(item)
                elif isinstance(item, LiveEvent):
                    batch.append(item)
                elif item is TICK:
                    ticked = True
                elif item is RESYNC:
                    read_history = True  # what is still queued is deduplicated after it
                    break
                elif item is RUN_ENDED:
                    if batch:
                        yield batch
                    return  # the run's last events were queued before this marker
                elif item is REVOKED:
                    break  # raised at the top of the loop
            if batch or ticked:
                yield batch


async def follow_events(
    hub: EventHub,
    *,
    run_id: uuid.UUID | None = None,
    owner: str | None = None,
    pattern: str | None = None,
    after: int | None = None,
    token_id: str | None = None,
) -> AsyncIterator[HubEvent]:
    """The durable events of `follow_batches`, one at a time (live-only ones left out)."""
    batches = follow_batches(
        hub, run_id=run_id, owner=owner, pattern=pattern, after=after, token_id=token_id
    )
    try:
        async for batch in batches:
            for item in batch:
                if isinstance(item, HubEvent):
                    yield item
    finally:
        await batches.aclose()
