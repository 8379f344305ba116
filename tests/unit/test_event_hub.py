"""The hub and event streams over an in-memory event store (no database, no LISTEN).

The store mimics run_events: rows with (xid, id), released once their xid is below the
horizon. Tests move the horizon by hand and run the hub's read step directly.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime

import pytest

from app.errors import Unauthorized
from app.events.follower import follow_events
from app.events.hub import EventHub, EventStore
from app.events.store import STREAM_START, EventPosition, FinalRuns
from app.events.subscription import RESYNC, HubEvent, HubPage
from app.schemas.runs import EventOut

RUN = uuid.uuid4()
OTHER_RUN = uuid.uuid4()


class MemoryStore(EventStore):
    def __init__(self) -> None:
        self.rows: list[HubEvent] = []
        self.horizon = 1
        self.final: set[uuid.UUID] = set()
        self.calls: Counter[str] = Counter()
        self.next_id = 1

    def write(self, xid: int, run_id: uuid.UUID = RUN, name: str = "a.b", owner: str = "o") -> int:
        event = EventOut(
            id=self.next_id, run_id=run_id, name=name, payload={}, created_at=datetime.now(UTC)
        )
        self.rows.append(HubEvent(event, owner, xid, event.model_dump_json()))
        self.next_id += 1
        return event.id

    async def page(
        self,
        after: EventPosition,
        *,
        limit: int,
        run_id: uuid.UUID | None = None,
        owner: str | None = None,
    ) -> HubPage:
        self.calls["page"] += 1
        rows = sorted(
            (
                r
                for r in self.rows
                if r.position > after
                and (run_id is None or r.event.run_id == run_id)
                and (owner is None or r.owner == owner)
            ),
            key=lambda r: r.position,
        )
        released = [r for r in rows if r.xid < self.horizon][:limit]
        last = released[-1].position if released else after
        held = any(r.xid >= self.horizon and r.position > last for r in rows)
        return HubPage(released, self.horizon, len(released) == limit, held)

    async def frontier(self) -> tuple[EventPosition, bool]:
        self.calls["frontier"] += 1
        released = [r.position for r in self.rows if r.xid < self.horizon]
        held = any(r.xid >= self.horizon for r in self.rows)
        return max(released, default=STREAM_START), held

    async def position_of(self, event_id: int) -> EventPosition:
        below = [r for r in self.rows if r.event.id <= event_id]
        xid = max(below, key=lambda r: r.event.id).xid if below else 0
        return EventPosition(xid, event_id)

    async def final_runs(self, run_ids: Collection[uuid.UUID]) -> FinalRuns:
        self.calls["final_runs"] += 1
        return FinalRuns(frozenset(r for r in run_ids if r in self.final), self.horizon)


@pytest.fixture
async def hub() -> EventHub:
    hub = EventHub("postgresql://unused/unused", MemoryStore(), page_size=2)
    await hub._read()  # the cursor, as after the first LISTEN
    return hub


def store_of(hub: EventHub) -> MemoryStore:
    assert isinstance(hub.store, MemoryStore)
    return hub.store


async def collect(events: AsyncIterator[HubEvent], into: list[int]) -> None:
    async for item in events:
        into.append(item.event.id)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_one_read_per_batch_whatever_the_number_of_subscribers(hub: EventHub) -> None:
    store = store_of(hub)
    async with (
        hub.subscribe(run_id=RUN) as one,
        hub.subscribe("a.*") as everything,
        hub.subscribe("x.*") as nothing,
        hub.subscribe(owner="someone-else") as foreign,
    ):
        ids = [store.write(xid=1) for _ in range(5)]
        store.horizon = 2
        before = store.calls["page"]
        await hub._read()
        assert store.calls["page"] - before == 3  # pages of 2: one read for all four
        for sub in (one, everything):
            assert [sub.queue.get_nowait().event.id for _ in ids] == ids  # type: ignore[union-attr]
        assert nothing.queue.empty() and foreign.queue.empty()


async def test_events_are_released_in_xid_order_once_older_transactions_end(
    hub: EventHub,
) -> None:
    store = store_of(hub)
    received: list[int] = []
    task = asyncio.create_task(collect(follow_events(hub), received))
    await settle()
    later = store.write(xid=7)  # committed first, but xid 5 is still open
    store.horizon = 5
    await hub._read()
    await settle()
    assert received == [] and hub._held_back  # held back: the hub will look again
    earlier = store.write(xid=5)
    store.horizon = 8
    await hub._read()
    await settle()
    assert received == [earlier, later] and not hub._held_back
    task.cancel()
    # Resuming from the first one sends the other once.
    resumed: list[int] = []
    task = asyncio.create_task(collect(follow_events(hub, after=earlier), resumed))
    await settle()
    assert resumed == [later]
    task.cancel()


async def test_a_run_stream_ends_after_the_runs_last_event(hub: EventHub) -> None:
    store = store_of(hub)
    first = store.write(xid=1)
    store.horizon = 2
    received: list[int] = []
    task = asyncio.create_task(collect(follow_events(hub, run_id=RUN), received))
    await settle()
    assert received == [first]
    last = store.write(xid=3)
    store.final.add(RUN)
    hub.expect_end(RUN, settled_at=4)  # what the run's final NOTIFY says (its xid + 1)
    store.horizon = 3  # the last event's transaction is still open
    await hub._read()
    await settle()
    assert not task.done()
    store.horizon = 4
    await hub._read()
    await asyncio.wait_for(task, 1)
    assert received == [first, last]


async def test_a_finished_run_sends_its_history_and_ends_without_the_hub(
    hub: EventHub,
) -> None:
    store = store_of(hub)
    ids = [store.write(xid=1), store.write(xid=2, run_id=OTHER_RUN), store.write(xid=2)]
    store.final.add(RUN)
    store.horizon = 3
    received: list[int] = []
    await asyncio.wait_for(collect(follow_events(hub, run_id=RUN), received), 1)
    assert received == [ids[0], ids[2]]


async def test_an_overflowing_subscriber_catches_up_from_the_store(hub: EventHub) -> None:
    store = store_of(hub)
    async with hub.subscribe(max_queue=2) as sub:
        for _ in range(3):
            store.write(xid=1)
        store.horizon = 2
        await hub._read()
        assert sub.queue.get_nowait() is RESYNC and sub.overflows == 1


async def test_a_revoked_token_ends_its_streams(hub: EventHub) -> None:
    async def revoked(token_ids: frozenset[str]) -> frozenset[str]:
        return token_ids & {"gone"}

    hub.revoked_tokens = revoked
    kept: list[int] = []
    streams = [
        asyncio.create_task(collect(follow_events(hub, token_id="gone"), [])),
        asyncio.create_task(collect(follow_events(hub, run_id=RUN, token_id="gone"), [])),
        asyncio.create_task(collect(follow_events(hub, token_id="kept"), kept)),
    ]
    await settle()
    await hub._check_tokens()
    for stream in streams[:2]:
        with pytest.raises(Unauthorized):
            await asyncio.wait_for(stream, 1)
    assert not streams[2].done()
    streams[2].cancel()


async def test_run_end_marker_is_not_lost_on_overflow(hub: EventHub) -> None:
    async with hub.subscribe(run_id=RUN, max_queue=1) as sub:
        sub.offer(RESYNC)
        sub.end_run()  # the queue is full: the marker is dropped, the flag stays
        assert sub.run_ended and sub.queue.get_nowait() is RESYNC
