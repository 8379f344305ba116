"""Streams cost the database per batch of events, not per subscriber, and nothing while idle.

A real hub on the module's database; every SQL statement through its pool is counted.
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


async def test_streams_read_once_per_batch_and_not_while_idle(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=5)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    hub = EventHub.for_database(database_url, create_session_factory(engine))
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

        published = await asyncio.to_thread(insert_event, database_url, run_id, "a.b")
        await wait_until(lambda: all(r == [published] for r in received))
        batch = statements[before:]
        assert 0 < len(batch) <= 5, batch  # one read for all 30 streams

        before = len(statements)
        end = await asyncio.to_thread(finish_run, database_url, run_id)
        await asyncio.wait_for(asyncio.gather(*streams[:RUN_STREAMS]), 10)
        assert all(r == [published, end] for r in received[:RUN_STREAMS])
        assert len(statements) - before <= 10  # the hub's reads; the streams end on its word
        for stream in streams[RUN_STREAMS:]:
            stream.cancel()
    finally:
        await hub.stop()
        await engine.dispose()
