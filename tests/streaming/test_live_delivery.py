"""Live delivery through a real API: no pooled connection needed, live-only notifications.

The events travel in their notifications, so a live stream keeps going while every pooled
connection of the API is held by other requests; live-only notifications reach open streams
without an `id:` and are never replayed.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import psycopg
import pytest

from app.db.session import create_engine, create_session_factory
from app.events.publish import RunEvents
from app.events.store import LiveEventTooLarge
from app.runs import repository
from tests.streaming.conftest import Service
from tests.streaming.helpers import (
    IRIS_SPEC,
    Reader,
    finish_run,
    insert_event,
    insert_run,
    read_sse,
)

pytestmark = pytest.mark.slow

EPOCH = "cerebros.nas.trial.epoch"
BLOCKED_REQUESTS = 50  # more than the API's pool (20) can hold, whatever its overflow


@pytest.fixture
async def run_events(database_url: str) -> AsyncIterator[Callable[[uuid.UUID], RunEvents]]:
    engine = create_engine(database_url, pool_size=2)
    sessions = create_session_factory(engine)
    yield lambda run_id: RunEvents(sessions, run_id)
    await engine.dispose()


def lock_waiters(database_url: str) -> int:
    """Backends of this database waiting for a lock."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_live_stream_keeps_delivering_while_the_pool_is_exhausted(
    service: Service,
    database_url: str,
    run_events: Callable[[uuid.UUID], RunEvents],
) -> None:
    run_id = insert_run(database_url)
    reader = Reader(f"{service.base}/runs/{run_id}/events/stream", timeout=60)
    reader.start()
    assert reader.opened.wait(10)
    first = insert_event(database_url, run_id, EPOCH, {"epoch": 1})
    await until(lambda: reader.seen.sse_ids == [first], 10, "the stream never went live")

    async with run_events(run_id).sessions() as locker, locker.begin():
        # Every POST /runs waits for the owner's submission lock holding a pooled connection;
        # the rest of the requests wait for a connection and give up with a 503 once the
        # pool's timeout has passed. (An advisory lock: the locker takes no transaction id,
        # which would hold every later event back, as the stream order requires.)
        await repository.lock_owner(locker, "local")
        limits = httpx.Limits(max_connections=BLOCKED_REQUESTS + 5)
        async with httpx.AsyncClient(
            base_url=service.base, limits=limits, timeout=httpx.Timeout(60)
        ) as client:
            requests = [
                asyncio.create_task(client.post("/runs", json=IRIS_SPEC))
                for _ in range(BLOCKED_REQUESTS)
            ]
            done, _ = await asyncio.wait(requests, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            assert done, "no request gave up waiting for a pooled connection"
            refused = next(iter(done)).result()
            assert refused.status_code == 503, refused.text
            assert refused.json()["detail"] == "the service is busy, retry shortly"
            held = lock_waiters(database_url)
            assert held >= 1  # still blocked, each on a pooled connection

            # The pool is exhausted: publish a small event, a live-only one, one too large for
            # its notification, and end the run.
            second = await asyncio.to_thread(insert_event, database_url, run_id, EPOCH, {"e": 2})
            await run_events(run_id).notify_live(EPOCH, {"epoch": 2, "live": "yes"})
            large = await asyncio.to_thread(
                insert_event, database_url, run_id, EPOCH, {"blob": "x" * 20_000}
            )
            end = await asyncio.to_thread(finish_run, database_url, run_id)
            await until(lambda: reader.seen.ended, 10, "the stream stalled on the busy pool")
            assert lock_waiters(database_url) == held  # the pool never freed up
            await locker.rollback()
            answers = await asyncio.gather(*requests)
    assert all(a.status_code in (202, 503) for a in answers)
    result = reader.outcome()
    assert result.sse_ids == [first, second, large, end]
    assert result.events[2]["payload"] == {"blob": "x" * 20_000}
    assert [e["payload"] for e in result.live] == [{"epoch": 2, "live": "yes"}]


async def test_live_only_notifications_reach_open_streams_and_are_never_replayed(
    service: Service,
    database_url: str,
    run_events: Callable[[uuid.UUID], RunEvents],
) -> None:
    run_id = insert_run(database_url)
    events = run_events(run_id)
    run_stream = Reader(f"{service.base}/runs/{run_id}/events/stream")
    epochs_everywhere = Reader(
        f"{service.base}/events/stream", params={"pattern": "cerebros.nas.trial.*"}, max_events=2
    )
    runs_only = Reader(
        f"{service.base}/events/stream", params={"pattern": "cerebros.nas.run.*"}, max_events=1
    )
    for reader in (run_stream, epochs_everywhere, runs_only):
        reader.start()
        assert reader.opened.wait(10)
    await asyncio.sleep(0.3)  # the global streams start "from now"

    before = await asyncio.to_thread(insert_event, database_url, run_id, EPOCH, {"epoch": 1})
    await events.notify_live(EPOCH, {"epoch": 2})
    async with events.sessions.begin() as session:  # with the caller's transaction
        await events.notify_live(EPOCH, {"epoch": 3}, session=session)
    async with events.sessions() as session:  # rolled back: nothing is sent
        await events.notify_live(EPOCH, {"epoch": "never"}, session=session)
        await session.rollback()
    after = await asyncio.to_thread(insert_event, database_url, run_id, EPOCH, {"epoch": 4})
    end = await asyncio.to_thread(finish_run, database_url, run_id)

    result = run_stream.outcome()
    assert result.sse_ids == [before, after, end] and result.ended
    assert [e["payload"]["epoch"] for e in result.live] == [2, 3]
    for live in result.live:
        assert live["run_id"] == str(run_id) and live["name"] == EPOCH and live["created_at"]
    everywhere = epochs_everywhere.outcome()
    assert everywhere.sse_ids == [before, after]
    assert [e["payload"]["epoch"] for e in everywhere.live] == [2, 3]
    only_runs = runs_only.outcome()
    assert only_runs.sse_ids == [end] and only_runs.live == []

    # Resuming (Last-Event-ID is the last durable event seen) replays durable events only.
    resumed = read_sse(
        f"{service.base}/runs/{run_id}/events/stream", headers={"Last-Event-ID": str(before)}
    )
    assert resumed.sse_ids == [after, end] and resumed.live == []
    # The live ones are on no page of the run's events either.
    page = httpx.get(f"{service.base}/runs/{run_id}/events", params={"after": 0}).json()
    assert [e["id"] for e in page["items"]] == [before, after, end]


async def test_a_live_notification_too_large_is_refused(
    database_url: str, run_events: Callable[[uuid.UUID], RunEvents]
) -> None:
    events = run_events(insert_run(database_url))
    with pytest.raises(LiveEventTooLarge):
        await events.notify_live(EPOCH, {"blob": "x" * 8000})


def test_a_client_that_stops_reading_gets_every_event_in_order_when_it_reads_again(
    service: Service, database_url: str
) -> None:
    """The fan-out writes to a caught-up client directly until its transport is backed up;
    then the stream's own task takes over, waits for the client and keeps the order."""
    run_id = insert_run(database_url)
    host, port = service.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET /runs/{run_id}/events/stream HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head
        time.sleep(0.5)  # the stream catches up (no history) and waits for the hub
        blob = "x" * 6000
        with psycopg.connect(database_url) as conn:  # 300 events, about 1.8 MB, one commit
            published = [
                int(row[0])
                for row in conn.execute(
                    "INSERT INTO run_events (run_id, name, payload)"
                    " SELECT %s, %s, jsonb_build_object('i', i, 'blob', %s::text)"
                    " FROM generate_series(1, 300) AS i RETURNING id",
                    (run_id, EPOCH, blob),
                ).fetchall()
            ]
        time.sleep(2.0)  # the client reads nothing meanwhile
        finish_run(database_url, run_id)
        sock.settimeout(20)
        body = head
        while b"event: stream.end" not in body:
            chunk = sock.recv(1 << 16)
            assert chunk, "the stream closed early"
            body += chunk
    ids = [int(x) for x in re.findall(rb"\nid: (\d+)\n", body)]
    assert ids == sorted(published) + ids[-1:] and len(ids) == len(published) + 1
