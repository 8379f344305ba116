"""Events committed out of id order reach every stream once, in (xid, id) order.

Two real connections write events so that ids and commit order disagree, while clients
follow the global stream, a run's stream, and resume with Last-Event-ID in the middle.
"""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest

from tests.streaming.conftest import Service
from tests.streaming.helpers import Reader, insert_event, insert_run, read_sse

pytestmark = pytest.mark.slow

NAME = "cerebros.nas.test.order"


def insert_in(conn: psycopg.Connection, run_id: uuid.UUID, step: str) -> int:
    """Insert an event in `conn`'s open transaction (not committed)."""
    row = conn.execute(
        "INSERT INTO run_events (run_id, name, payload) VALUES (%s, %s, %s) RETURNING id",
        (run_id, NAME, json.dumps({"step": step})),
    ).fetchone()
    assert row is not None
    return int(row[0])


def stream_order(database_url: str, after: int) -> list[int]:
    """The run_events after event `after`, in the order the streams promise."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id FROM run_events WHERE (xid, id) > (SELECT xid, id FROM run_events"
            " WHERE id = %s) ORDER BY xid, id",
            (after,),
        ).fetchall()
    return [int(r[0]) for r in rows]


def test_events_committed_out_of_id_order_arrive_once_in_stream_order(
    service: Service, database_url: str
) -> None:
    run_id = insert_run(database_url)
    baseline = insert_event(database_url, run_id, NAME, {"step": "baseline"})
    expected_count = 5
    everything = Reader(f"{service.base}/events/stream", max_events=expected_count)
    one_run = Reader(
        f"{service.base}/runs/{run_id}/events/stream",
        params={"after": baseline},
        max_events=expected_count,
    )
    for reader in (everything, one_run):
        reader.start()
        assert reader.opened.wait(10)
    time.sleep(0.3)  # the global stream starts "from now"

    with psycopg.connect(database_url) as first, psycopg.connect(database_url) as second:
        # 1. The lower id commits last.
        low = insert_in(first, run_id, "low")
        high = insert_in(second, run_id, "high")
        second.commit()
        # A client reconnects while `low` is still open (it last saw the baseline).
        resumed_meanwhile = Reader(
            f"{service.base}/events/stream",
            headers={"Last-Event-ID": str(baseline)},
            max_events=expected_count,
        )
        resumed_meanwhile.start()
        assert resumed_meanwhile.opened.wait(10)
        time.sleep(0.5)
        first.commit()
        # 2. The higher id belongs to the older transaction (it took its xid first).
        first.execute("SELECT pg_current_xact_id()")
        newer = insert_in(second, run_id, "newer")
        older = insert_in(first, run_id, "older")
        second.commit()
        time.sleep(0.3)
        first.commit()
    tail = insert_event(database_url, run_id, NAME, {"step": "tail"})

    assert low < high and newer < older
    expected = stream_order(database_url, baseline)
    assert sorted(expected) == sorted([low, high, newer, older, tail])
    assert expected.index(older) < expected.index(newer)  # (xid, id), not id, order
    for reader in (everything, one_run, resumed_meanwhile):
        assert reader.outcome().sse_ids == expected

    # Resuming from any event, the rest follows exactly once.
    for cut in range(1, expected_count):
        again = read_sse(
            f"{service.base}/events/stream",
            headers={"Last-Event-ID": str(expected[cut - 1])},
            max_events=expected_count - cut,
            timeout=10,
        )
        assert again.sse_ids == expected[cut:]


def test_an_event_held_back_by_an_older_transaction_is_released_when_it_ends(
    service: Service, database_url: str
) -> None:
    """The older transaction ends without writing an event, so without a notification: the
    hub re-checks on its own."""
    run_id = insert_run(database_url)
    reader = Reader(f"{service.base}/runs/{run_id}/events/stream", max_events=1)
    reader.start()
    assert reader.opened.wait(10)
    with psycopg.connect(database_url) as older:
        older.execute("SELECT pg_current_xact_id()")  # holds an xid, writes nothing
        event = insert_event(database_url, run_id, NAME, {"step": "held"})
        time.sleep(1.0)
        assert reader.is_alive() and reader.result is None  # not released yet
        older.rollback()
        ended = time.monotonic()
    result = reader.outcome(timeout=10)
    assert result.sse_ids == [event]
    assert time.monotonic() - ended < 5
