"""SSE streams through a real uvicorn API; events are published by inserting rows."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import psycopg
import pytest

from app.client import END_EVENT, _sse_events
from app.events.hub import HUB_APPLICATION_NAME
from tests.streaming.conftest import Service
from tests.streaming.helpers import (
    Reader,
    finish_run,
    insert_event,
    insert_run,
    read_sse,
    run_event_ids,
)

pytestmark = pytest.mark.slow

TRIAL_EPOCH = "cerebros.nas.trial.epoch"
STEP_STARTED = "cerebros.nas.step.started"


def hub_connections(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (HUB_APPLICATION_NAME,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_live_run_events_arrive_in_order_and_stream_closes(
    service: Service, database_url: str
) -> None:
    run_id = insert_run(database_url)
    first = insert_event(database_url, run_id, "cerebros.nas.run.started")
    reader = Reader(f"{service.base}/runs/{run_id}/events/stream")
    reader.start()
    assert reader.opened.wait(10)
    published = [first]
    for epoch in range(1, 6):
        published.append(insert_event(database_url, run_id, TRIAL_EPOCH, {"epoch": epoch}))
        time.sleep(0.05)
    published.append(finish_run(database_url, run_id))
    result = reader.outcome()
    assert result.sse_ids == published
    assert result.ended
    assert [e["payload"].get("epoch") for e in result.events[1:6]] == [1, 2, 3, 4, 5]
    assert set(result.events[0]) >= {"id", "run_id", "name", "payload", "created_at"}


def test_resume_with_last_event_id_has_no_gap_and_no_duplicate(
    service: Service, database_url: str
) -> None:
    run_id = insert_run(database_url)
    url = f"{service.base}/runs/{run_id}/events/stream"
    for i in range(3):
        insert_event(database_url, run_id, TRIAL_EPOCH, {"epoch": i})
    first = read_sse(url, max_events=2)  # disconnect mid-history
    assert len(first.sse_ids) == 2
    for i in range(3, 7):  # committed while the client is away
        insert_event(database_url, run_id, TRIAL_EPOCH, {"epoch": i})
    reader = Reader(url, headers={"Last-Event-ID": str(first.sse_ids[-1])})
    reader.start()
    assert reader.opened.wait(10)
    for i in range(7, 9):  # live after the reconnection
        insert_event(database_url, run_id, TRIAL_EPOCH, {"epoch": i})
    finish_run(database_url, run_id)
    second = reader.outcome()
    assert first.sse_ids + second.sse_ids == run_event_ids(database_url, run_id)
    # `?after=` resumes the same way (for clients that cannot set headers).
    third = read_sse(url, params={"after": second.sse_ids[2]})
    assert third.sse_ids == second.sse_ids[3:]


def test_pattern_filters_names_and_stream_still_ends(service: Service, database_url: str) -> None:
    run_id = insert_run(database_url)
    epochs = [insert_event(database_url, run_id, TRIAL_EPOCH, {"epoch": i}) for i in range(2)]
    insert_event(database_url, run_id, STEP_STARTED, {"step": "x"})
    reader = Reader(
        f"{service.base}/runs/{run_id}/events/stream",
        params={"pattern": "cerebros.nas.trial.**"},
    )
    reader.start()
    assert reader.opened.wait(10)
    epochs.append(insert_event(database_url, run_id, TRIAL_EPOCH, {"epoch": 2}))
    insert_event(database_url, run_id, STEP_STARTED, {"step": "y"})
    finish_run(database_url, run_id)
    result = reader.outcome()
    assert result.sse_ids == epochs
    assert result.ended


def test_invalid_pattern_is_a_422_naming_pattern(service: Service, database_url: str) -> None:
    run_id = insert_run(database_url)
    response = httpx.get(
        f"{service.base}/runs/{run_id}/events/stream", params={"pattern": "cerebros..x"}
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["pattern"]
    bad_header = httpx.get(
        f"{service.base}/runs/{run_id}/events/stream", headers={"Last-Event-ID": "abc"}
    )
    assert bad_header.status_code == 422
    missing = httpx.get(f"{service.base}/runs/00000000-0000-0000-0000-000000000000/events/stream")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_finished_run_sends_history_and_closes(service: Service, database_url: str) -> None:
    for status in ("succeeded", "failed"):
        run_id = insert_run(database_url)
        insert_event(database_url, run_id, "cerebros.nas.run.started")
        insert_event(database_url, run_id, "cerebros.nas.run.cancelled")
        finish_run(database_url, run_id, status)
        started = time.monotonic()
        result = read_sse(f"{service.base}/runs/{run_id}/events/stream", timeout=10)
        assert result.ended and time.monotonic() - started < 5
        assert result.sse_ids == run_event_ids(database_url, run_id)


def test_cancelled_run_closes_on_final_row_not_on_cancelled_event(
    service: Service, database_url: str
) -> None:
    run_id = insert_run(database_url)
    reader = Reader(f"{service.base}/runs/{run_id}/events/stream")
    reader.start()
    assert reader.opened.wait(10)
    # Compensation publishes `cancelled` before `failed`: the stream must wait for `failed`.
    insert_event(database_url, run_id, "cerebros.nas.run.cancelled", {"reason": "x failed"})
    time.sleep(0.5)
    assert reader.is_alive()
    failed = finish_run(database_url, run_id, "failed")
    assert reader.outcome().sse_ids[-1] == failed
    # A user cancel: `cancelled` event and final row in one transaction, nothing after.
    run_id = insert_run(database_url)
    reader = Reader(f"{service.base}/runs/{run_id}/events/stream")
    reader.start()
    assert reader.opened.wait(10)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO run_events (run_id, name, payload) VALUES (%s, %s, '{}')",
            (run_id, "cerebros.nas.run.cancelled"),
        )
        conn.execute("UPDATE runs SET status = 'cancelled' WHERE id = %s", (run_id,))
    result = reader.outcome(timeout=10)
    assert result.ended and result.names == ["cerebros.nas.run.cancelled"]


async def _read_n(client: httpx.AsyncClient, url: str, n: int, ready: asyncio.Event) -> list[int]:
    ids: list[int] = []
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        ready.set()
        lines = response.aiter_lines()
        pending: dict[str, str] = {}
        async for line in lines:
            if line.startswith("id:"):
                pending["id"] = line[3:].strip()
            elif line == "" and "id" in pending:
                ids.append(int(pending.pop("id")))
                if len(ids) >= n:
                    return ids
    return ids


async def test_hub_fans_out_to_many_clients_over_one_listen_connection(
    service: Service, database_url: str
) -> None:
    run_id = insert_run(database_url)
    url = f"{service.base}/runs/{run_id}/events/stream"
    clients = 50
    limits = httpx.Limits(max_connections=clients + 5)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(10, read=30)) as client:
        ready = [asyncio.Event() for _ in range(clients)]
        tasks = [asyncio.create_task(_read_n(client, url, 3, r)) for r in ready]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 20)
        assert hub_connections(database_url) == 1
        published = [
            await asyncio.to_thread(insert_event, database_url, run_id, TRIAL_EPOCH, {"i": i})
            for i in range(3)
        ]
        results = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert all(ids == published for ids in results)
    assert hub_connections(database_url) == 1


def test_hub_reconnects_and_catches_up_after_losing_its_connection(
    service: Service, database_url: str
) -> None:
    run_id = insert_run(database_url)
    reader = Reader(f"{service.base}/runs/{run_id}/events/stream")
    reader.start()
    assert reader.opened.wait(10)
    before = insert_event(database_url, run_id, TRIAL_EPOCH, {"i": 0})
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (HUB_APPLICATION_NAME,),
        )
    during = insert_event(database_url, run_id, TRIAL_EPOCH, {"i": 1})  # nobody listening
    deadline = time.monotonic() + 15
    while hub_connections(database_url) != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hub_connections(database_url) == 1
    end = finish_run(database_url, run_id)
    assert reader.outcome().sse_ids == [before, during, end]


def test_global_stream_filters_by_pattern_across_runs(service: Service, database_url: str) -> None:
    reader = Reader(
        f"{service.base}/events/stream",
        params={"pattern": "cerebros.nas.run.*"},
        max_events=2,
    )
    reader.start()
    assert reader.opened.wait(10)
    time.sleep(0.3)  # the stream starts "from now"
    one, two = insert_run(database_url), insert_run(database_url)
    insert_event(database_url, one, TRIAL_EPOCH)
    a = insert_event(database_url, one, "cerebros.nas.run.started")
    b = insert_event(database_url, two, "cerebros.nas.run.started")
    result = reader.outcome()
    assert result.sse_ids == [a, b]
    assert {e["run_id"] for e in result.events} == {str(one), str(two)}


def test_sse_parser_skips_pings() -> None:
    lines = [": ping", "", "id: 4", "event: x.y", 'data: {"a": 1}', "", "event: " + END_EVENT]
    lines += ["data: {}", ""]
    parsed = list(_sse_events(iter(lines)))
    assert parsed == [("4", "x.y", json.dumps({"a": 1})), (None, END_EVENT, "{}")]
