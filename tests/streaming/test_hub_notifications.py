"""The hub's notification path, driven by hand: no database, no LISTEN connection.

Notifications are handed to the hub as its listener would (channel, payload, sender pid);
a sync notification carries a snapshot's xmin. The store (for reads after a gap and for
events too large for their notification) is in memory.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Collection
from datetime import UTC, datetime

import pytest

from app.events.hub import RUNS_CHANNEL, EventHub, EventStore
from app.events.names import EVENTS_CHANNEL, SYNC_CHANNEL
from app.events.store import STREAM_START, EventPosition, FinalRuns
from app.events.subscription import RUN_ENDED, HubEvent, HubPage, Item, LiveEvent
from app.schemas.runs import EventOut

RUN = uuid.uuid4()
OTHER_RUN = uuid.uuid4()
SYNC_PID = 4242


def event_out(event_id: int, run_id: uuid.UUID = RUN, name: str = "a.b") -> EventOut:
    return EventOut(
        id=event_id, run_id=run_id, name=name, payload={"n": event_id}, created_at=datetime.now(UTC)
    )


class Rows(EventStore):
    """Committed rows; every one released (the tests drive the horizon by syncs)."""

    def __init__(self) -> None:
        self.rows: list[HubEvent] = []
        self.reads = 0

    def add(self, item: HubEvent) -> None:
        self.rows.append(item)

    async def page(
        self,
        after: EventPosition,
        *,
        limit: int,
        run_id: uuid.UUID | None = None,
        owner: str | None = None,
    ) -> HubPage:
        self.reads += 1
        rows = sorted((r for r in self.rows if r.position > after), key=lambda r: r.position)
        horizon = max((r.xid for r in self.rows), default=0) + 1  # all of them have ended
        return HubPage(rows[:limit], horizon, len(rows) > limit, False)

    async def frontier(self) -> tuple[EventPosition, bool]:
        self.reads += 1
        return max((r.position for r in self.rows), default=STREAM_START), False

    async def position_of(self, event_id: int) -> EventPosition:
        return EventPosition(0, event_id)

    async def final_runs(self, run_ids: Collection[uuid.UUID]) -> FinalRuns:
        return FinalRuns(frozenset(), 0)

    async def events(self, event_ids: Collection[int]) -> list[HubEvent]:
        self.reads += 1
        return [r for r in self.rows if r.event.id in event_ids]


@pytest.fixture
async def hub() -> EventHub:
    """A hub past its first read, listening (as far as it knows)."""
    hub = EventHub("postgresql://unused/unused", Rows())
    hub._listens = 1
    hub.connected.set()
    await hub._advance()  # the cursor; nothing held back, so notifications suffice from now
    assert not hub._gap
    hub.channels.sync_pid = SYNC_PID
    return hub


def rows_of(hub: EventHub) -> Rows:
    assert isinstance(hub.store, Rows)
    return hub.store


def notification(item: HubEvent, xmin: int | None = None) -> tuple[str, str, int]:
    """What the row trigger sends for `item` (migration 0015; `xmin`: its statement's)."""
    body = json.loads(item.json) | {"xid": str(item.xid), "owner": item.owner}
    if xmin is not None:
        body["xmin"] = str(xmin)
    return EVENTS_CHANNEL, json.dumps(body), 1


def notify_event(
    hub: EventHub, xid: int, event_id: int, *, xmin: int | None = None, run_id: uuid.UUID = RUN
) -> HubEvent:
    """Commit an event (a row) and hand its notification to the hub."""
    out = event_out(event_id, run_id)
    item = HubEvent(out, "o", xid, out.model_dump_json())
    rows_of(hub).add(item)
    hub._inbox.append(notification(item, xmin))
    return item


def notify_sync(hub: EventHub, xmin: int, pid: int = SYNC_PID) -> None:
    hub._inbox.append((SYNC_CHANNEL, str(xmin), pid))


async def step(hub: EventHub) -> None:
    """One turn of the dispatcher: take the notifications, release what can be."""
    hub._take_notifications()
    await hub._advance()


def drain(queue: asyncio.Queue[Item]) -> list[Item]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def ids(items: list[Item]) -> list[int]:
    return [i.event.id for i in items if isinstance(i, HubEvent)]


async def test_a_sync_releases_held_events_in_stream_order(hub: EventHub) -> None:
    async with hub.subscribe() as sub:
        notify_event(hub, xid=11, event_id=1)  # committed first, xid 10 still open
        notify_sync(hub, xmin=10)
        await step(hub)
        assert sub.queue.empty()  # held back behind xid 10
        notify_event(hub, xid=10, event_id=2)
        notify_sync(hub, xmin=12)
        await step(hub)
        assert ids(drain(sub.queue)) == [2, 1]  # (xid, id) order, not id order
        assert hub.cursor == EventPosition(11, 1)
        assert rows_of(hub).reads == 1  # the first read only: events came in notifications


async def test_events_at_or_before_the_cursor_are_not_offered_twice(hub: EventHub) -> None:
    async with hub.subscribe() as sub:
        first = notify_event(hub, xid=10, event_id=1)
        notify_sync(hub, xmin=11)
        await step(hub)
        hub._inbox.append(notification(first))  # once more (read and notified, say)
        notify_sync(hub, xmin=12)
        await step(hub)
        assert ids(drain(sub.queue)) == [1]


async def test_an_event_too_large_for_its_notification_is_read_once(hub: EventHub) -> None:
    async with hub.subscribe() as one, hub.subscribe(run_id=RUN) as two:
        notify_event(hub, xid=10, event_id=1)
        big = HubEvent(event_out(2), "o", 10, event_out(2).model_dump_json())
        rows_of(hub).add(big)
        too_large = {"id": 2, "run_id": str(RUN), "xid": "10"}  # the trigger's fallback
        hub._inbox.append((EVENTS_CHANNEL, json.dumps(too_large), 1))
        notify_event(hub, xid=11, event_id=3)
        reads = rows_of(hub).reads
        notify_sync(hub, xmin=12)
        await step(hub)
        assert rows_of(hub).reads == reads + 1
        for sub in (one, two):
            assert ids(drain(sub.queue)) == [1, 2, 3]


async def test_a_run_ends_after_the_events_of_its_final_transaction(hub: EventHub) -> None:
    async with hub.subscribe(run_id=RUN) as sub:
        notify_event(hub, xid=20, event_id=1)
        hub._inbox.append((RUNS_CHANNEL, json.dumps({"run_id": str(RUN), "xid": "20"}), 1))
        notify_sync(hub, xmin=20)  # the final transaction is still seen running
        await step(hub)
        assert sub.queue.empty()
        notify_sync(hub, xmin=21)
        await step(hub)
        items = drain(sub.queue)
        assert ids(items) == [1] and items[-1] is RUN_ENDED


async def test_live_notifications_go_out_at_once_to_interested_streams(hub: EventHub) -> None:
    async with (
        hub.subscribe(run_id=RUN) as run_stream,
        hub.subscribe("cerebros.nas.trial.*") as trials,
        hub.subscribe("cerebros.nas.run.*") as runs,
        hub.subscribe(run_id=OTHER_RUN) as other,
        hub.subscribe(owner="someone-else") as foreign,
    ):
        body = {
            "live": True,
            "run_id": str(RUN),
            "owner": "o",
            "name": "cerebros.nas.trial.epoch",
            "payload": {"epoch": 3},
            "created_at": "2026-12-03T10:00:00+00:00",
        }
        notify_event(hub, xid=30, event_id=1)  # held: no sync yet
        hub._inbox.append((EVENTS_CHANNEL, json.dumps(body), 1))
        hub._take_notifications()  # no sync needed for a live one
        for sub in (run_stream, trials):
            (item,) = drain(sub.queue)
            assert isinstance(item, LiveEvent)
            assert item.sse.startswith(b"event: cerebros.nas.trial.epoch\ndata: ")
            data = json.loads(item.sse.decode().split("data: ", 1)[1])
            assert "id" not in data and data["live"] is True and data["payload"] == {"epoch": 3}
        assert runs.queue.empty() and other.queue.empty() and foreign.queue.empty()


async def test_after_a_lost_connection_the_database_is_read_until_nothing_is_held_back(
    hub: EventHub,
) -> None:
    async with hub.subscribe() as sub:
        # Committed while nobody listened: no notification.
        missed = HubEvent(event_out(1), "o", 40, event_out(1).model_dump_json())
        rows_of(hub).add(missed)
        hub._listens += 1
        hub._gap = True  # what the listener does when it connects again
        notify_event(hub, xid=41, event_id=2)
        reads = rows_of(hub).reads
        await step(hub)
        assert ids(drain(sub.queue)) == [1, 2]  # both read from the database, in order
        assert rows_of(hub).reads == reads + 1 and not hub._gap
        notify_event(hub, xid=42, event_id=3)
        notify_sync(hub, xmin=43)
        await step(hub)
        assert ids(drain(sub.queue)) == [3] and rows_of(hub).reads == reads + 1


async def test_a_read_that_began_before_a_reconnection_does_not_end_the_gap(
    hub: EventHub,
) -> None:
    hub._gap = True
    started = hub._listens
    hub._listens += 1  # the connection was made again while the read ran
    hub._leave_gap(False, started)
    assert hub._gap
    hub._leave_gap(False, hub._listens)
    assert not hub._gap


async def test_syncs_are_asked_at_once_for_news_and_then_only_every_recheck(
    hub: EventHub,
) -> None:
    async with hub.subscribe():
        notify_event(hub, xid=51, event_id=1)
        await step(hub)
        hub._ask_sync(now=100.0)
        assert hub.channels.sync_requested.is_set()  # a new event: sync at once
        hub.channels.sync_requested.clear()
        hub._sync_sent.append((hub._received, 100.0))
        hub._ask_sync(now=100.01)
        assert not hub.channels.sync_requested.is_set()  # one in flight
        notify_sync(hub, xmin=50)  # xid 50 still open: the event stays held
        await step(hub)
        hub._ask_sync(now=100.02)
        assert not hub.channels.sync_requested.is_set()  # nothing new: wait for the recheck
        hub._ask_sync(now=100.02 + hub.recheck_s)
        assert hub.channels.sync_requested.is_set()


async def test_an_event_written_with_no_older_transaction_open_needs_no_sync(
    hub: EventHub,
) -> None:
    async with hub.subscribe() as sub:
        notify_event(hub, xid=61, event_id=2, xmin=60)  # xid 60 was open: held
        await step(hub)
        assert sub.queue.empty()
        notify_event(hub, xid=60, event_id=3, xmin=60)  # none older than 60 open
        notify_event(hub, xid=60, event_id=4, xmin=60)
        await step(hub)
        assert ids(drain(sub.queue)) == [3, 4]  # 61 waits: 60 may still have been open
        notify_event(hub, xid=62, event_id=5, xmin=62)  # so 60 and 61 have ended
        await step(hub)
        assert ids(drain(sub.queue)) == [2, 5]
        assert not hub.channels.sync_requested.is_set() and rows_of(hub).reads == 1


async def test_a_run_ends_only_after_a_barrier_past_its_final_transaction(
    hub: EventHub,
) -> None:
    async with hub.subscribe(run_id=RUN) as sub:
        notify_event(hub, xid=70, event_id=1, xmin=70)
        hub._inbox.append((RUNS_CHANNEL, json.dumps({"run_id": str(RUN), "xid": "70"}), 1))
        await step(hub)
        assert ids(drain(sub.queue)) == [1]  # released at once, the end not yet:
        notify_event(hub, xid=70, event_id=2, xmin=70)  # more of xid 70 may be on its way
        await step(hub)
        assert ids(drain(sub.queue)) == [2]
        hub._ask_sync(now=200.0)
        assert hub.channels.sync_requested.is_set()  # the end asks for a sync
        notify_sync(hub, xmin=71)
        await step(hub)
        assert drain(sub.queue) == [RUN_ENDED]
