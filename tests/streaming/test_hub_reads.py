"""Live streams cost the normal pool nothing: the events travel in their notifications.

A real hub on the module's database; every SQL statement through the normal pool and through
the hub's own reader is counted. Only an event too large for its notification is read back,
once for all streams.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event

from app.db.session import create_engine, create_session_factory
from app.events.follower import follow_events
from app.events.hub import EventHub
from app.events.subscription import HubEvent
from tests.streaming.helpers import finish_run, insert_event, insert_run

pytestmark = pytest.mark.slow

RUN_STREAMS = 20
GLOBAL_STREAMS = 10


async def collect(events: AsyncIterator[HubEvent], into: list[int]) -> None:
    async for item in events:
        into.append(item.event.id)


async def wait_until(condition: Any, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_live_streams_read_nothing_and_large_events_are_read_once(
    database_url: str,
) -> None:
    engine = create_engine(database_url, pool_size=5)
    statements: list[str] = []
    hub_reads: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    def count_hub(*args: Any) -> None:
        hub_reads.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    hub = EventHub.for_database(database_url, create_session_factory(engine))
    assert hub.owned_engine is not None
    event.listen(hub.owned_engine.sync_engine, "before_cursor_execute", count_hub)
    await hub.start()
    try:
        run_id: uuid.UUID = await asyncio.to_thread(insert_run, database_url)
        received: list[list[int]] = [[] for _ in range(RUN_STREAMS + GLOBAL_STREAMS)]
        streams = [
            asyncio.create_task(collect(follow_events(hub, run_id=run_id), received[i]))
            for i in range(RUN_STREAMS)
        ] + [
            asyncio.create_task(collect(follow_events(hub), received[RUN_STREAMS + i]))
            for i in range(GLOBAL_STREAMS)
        ]
        await wait_until(lambda: len(hub.subscribers) == len(streams))
        await asyncio.sleep(0.5)  # their history reads
        before = len(statements)
        await asyncio.sleep(1.5)
        assert statements[before:] == []  # idle streams ask nothing

        hub_before = len(hub_reads)
        published = await asyncio.to_thread(insert_event, database_url, run_id, "a.b")
        await wait_until(lambda: all(r == [published] for r in received))
        assert statements[before:] == []  # the event came in its notification
        assert hub_reads[hub_before:] == []

        large = await asyncio.to_thread(
            insert_event, database_url, run_id, "a.large", {"blob": "x" * 10_000}
        )
        await wait_until(lambda: all(r == [published, large] for r in received))
        assert statements[before:] == []
        assert 0 < len(hub_reads) - hub_before <= 5, hub_reads  # one read for all 30 streams

        end = await asyncio.to_thread(finish_run, database_url, run_id)
        await asyncio.wait_for(asyncio.gather(*streams[:RUN_STREAMS]), 10)
        assert all(r == [published, large, end] for r in received[:RUN_STREAMS])
        assert statements[before:] == []  # the streams end on the hub's word
        for stream in streams[RUN_STREAMS:]:
            stream.cancel()
    finally:
        await hub.stop()
        await engine.dispose()
