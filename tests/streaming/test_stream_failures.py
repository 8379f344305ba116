"""A real API under database trouble: a busy pool is not an outage; a stream whose query
fails ends with a control event, not a traceback."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

import httpx
import psycopg
import pytest

from tests.streaming.conftest import Service
from tests.streaming.helpers import insert_event, insert_run

pytestmark = pytest.mark.slow

POOL_CONNECTIONS = 20  # create_engine: pool_size 10 + max_overflow 10, pool_timeout 10 s


def waiting_backends(database_url: str, table: str) -> list[int]:
    """Backends of this database blocked on a lock while querying `table`."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE %s",
            (f"%{table}%",),
        ).fetchall()
    return [int(r[0]) for r in rows]


async def test_an_exhausted_pool_is_busy_not_an_outage(service: Service, database_url: str) -> None:
    run_id = insert_run(database_url)
    extra = 4
    with psycopg.connect(database_url) as locker:
        # Every request that reaches the table waits, holding its pooled connection.
        locker.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        limits = httpx.Limits(max_connections=POOL_CONNECTIONS + extra + 5)
        async with httpx.AsyncClient(
            base_url=service.base, limits=limits, timeout=httpx.Timeout(30)
        ) as client:
            requests = [
                asyncio.create_task(client.get(f"/runs/{run_id}"))
                for _ in range(POOL_CONNECTIONS + extra)
            ]
            done, _ = await asyncio.wait(requests, timeout=20, return_when=asyncio.FIRST_COMPLETED)
            busy = [task.result() for task in done]
            locker.rollback()
            answers = await asyncio.gather(*requests)
    assert busy, "no request gave up waiting for a pooled connection"
    refused = [a for a in answers if a.status_code == 503]
    assert refused and all(a.status_code in (200, 503) for a in answers)
    for answer in refused:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"] == "the service is busy, retry shortly"
        assert int(answer.headers["retry-after"]) > 0


def test_a_stream_whose_query_fails_ends_with_a_reconnect_event(
    service: Service, database_url: str
) -> None:
    run_id = insert_run(database_url)
    sent = insert_event(database_url, run_id, "cerebros.nas.test.failure")
    log = service.log_dir / "api.log"
    log_start = log.stat().st_size
    with psycopg.connect(database_url) as locker:
        # The stream's history read blocks on this lock; then its connection is cut. The
        # hub's own reads may queue on the lock too (before or after the stream's), so every
        # waiter is cut until the stream has ended, whichever came first.
        locker.execute("LOCK TABLE run_events IN ACCESS EXCLUSIVE MODE")
        stop = threading.Event()

        def cut_waiters() -> None:
            with psycopg.connect(database_url, autocommit=True) as admin:
                while not stop.is_set():
                    for pid in waiting_backends(database_url, "run_events"):
                        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    time.sleep(0.05)

        with httpx.stream(
            "GET",
            f"{service.base}/runs/{run_id}/events/stream",
            timeout=httpx.Timeout(10, read=20),
        ) as response:
            assert response.status_code == 200
            deadline = time.monotonic() + 10
            while not waiting_backends(database_url, "run_events"):
                assert time.monotonic() < deadline, "the stream never queried run_events"
                time.sleep(0.05)
            cutter = threading.Thread(target=cut_waiters, daemon=True)
            cutter.start()
            try:
                lines = list(response.iter_lines())
            finally:
                stop.set()
                cutter.join()
                locker.rollback()
    assert "event: stream.reconnect" in lines, lines
    data = next(json.loads(x.removeprefix("data:")) for x in lines if x.startswith("data:"))
    assert data["reason"] == "server_error"
    assert not [x for x in lines if x.startswith("id:")]  # the client resumes from before
    time.sleep(0.5)  # the log line is written as the stream ends
    written = log.read_bytes()[log_start:].decode(errors="replace")
    assert "Traceback" not in written, written
    assert written.count("event stream interrupted") == 1, written
    # Reconnecting brings the event that could not be sent.
    resumed = httpx.get(f"{service.base}/runs/{run_id}/events", params={"after": 0}).json()
    assert [e["id"] for e in resumed["items"]] == [sent]


@pytest.mark.parametrize("value", ["99999999999999999999", str(2**63)])
def test_a_last_event_id_beyond_bigint_is_a_422(
    service: Service, database_url: str, value: str
) -> None:
    for path in (f"/runs/{uuid.uuid4()}/events/stream", "/events/stream"):
        response = httpx.get(f"{service.base}{path}", headers={"Last-Event-ID": value})
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["Last-Event-ID"]
