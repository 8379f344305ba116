"""Helpers shared by the streaming and client tests: rows by SQL, SSE reading over HTTP."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from app.client import END_EVENT, _sse_events

IRIS_SPEC: dict[str, Any] = {
    "dataset_id": "iris",
    "objective": "val_accuracy",
    "search_space": {"layers": [1], "neurons": [8, 16]},
    "budget": {"max_trials": 2},
    # Random search: trials 1 and 2, 2 epochs each (asha, the default, trains 1 epoch each).
    "parameters": {"strategy": "random", "epochs": 2},
}


def insert_run(database_url: str, status: str = "running") -> uuid.UUID:
    """A run row without a job (no worker will touch it): the test writes its events."""
    run_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (id, status, spec) VALUES (%s, %s, %s)",
            (run_id, status, json.dumps({"dataset_id": "iris", "budget": {"max_trials": 3}})),
        )
    return run_id


def insert_event(
    database_url: str, run_id: uuid.UUID, name: str, payload: dict[str, Any] | None = None
) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO run_events (run_id, name, payload) VALUES (%s, %s, %s) RETURNING id",
            (run_id, name, json.dumps(payload or {})),
        ).fetchone()
    assert row is not None
    return int(row[0])


def finish_run(database_url: str, run_id: uuid.UUID, status: str = "succeeded") -> int:
    """Publish the terminal event and make the row final, as the pipeline does."""
    name = "cerebros.nas.run.completed" if status == "succeeded" else "cerebros.nas.run.failed"
    event_id = insert_event(database_url, run_id, name)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE runs SET status = %s, finished_at = now() WHERE id = %s", (status, run_id)
        )
    return event_id


def run_event_ids(database_url: str, run_id: uuid.UUID | str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id FROM run_events WHERE run_id = %s ORDER BY id", (run_id,)
        ).fetchall()
    return [int(r[0]) for r in rows]


@dataclass
class SseResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    sse_ids: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    ended: bool = False
    live: list[dict[str, Any]] = field(default_factory=list)  # live-only events (no `id:`)


def read_sse(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    max_events: int | None = None,
    timeout: float = 30,
    opened: threading.Event | None = None,
    into: SseResult | None = None,
) -> SseResult:
    """Read an SSE stream until its end marker, `max_events` events, or the timeout.

    `into` is filled as the events come (another thread may watch it).
    """
    result = SseResult() if into is None else into
    with httpx.stream(
        "GET", url, headers=headers, params=params, timeout=httpx.Timeout(10, read=timeout)
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        if opened is not None:
            opened.set()
        for event_id, name, data in _sse_events(response.iter_lines()):
            if name == END_EVENT:
                result.ended = True
                break
            body = json.loads(data)
            if event_id is None:  # a live-only notification: no id, never replayed
                assert body["live"] is True and "id" not in body and body["name"] == name
                result.live.append(body)
                continue
            assert int(event_id) == body["id"]
            assert body["name"] == name
            result.events.append(body)
            result.sse_ids.append(int(event_id))
            result.names.append(name)
            if max_events is not None and len(result.events) >= max_events:
                break
    return result


class Reader(threading.Thread):
    """`read_sse` in a background thread (the test publishes meanwhile)."""

    def __init__(self, url: str, **kw: Any) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.kw = kw
        self.opened = threading.Event()
        self.seen = SseResult()  # filled as the events come
        self.result: SseResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = read_sse(self.url, opened=self.opened, into=self.seen, **self.kw)
        except BaseException as exc:
            self.error = exc
            self.opened.set()

    def outcome(self, timeout: float = 30) -> SseResult:
        self.join(timeout)
        assert not self.is_alive(), "the stream did not end"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result
