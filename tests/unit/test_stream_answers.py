"""How streams and requests answer database trouble: busy vs outage, and mid-stream failures."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import psycopg
import pytest
import sqlalchemy.exc
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.problems import install_problem_handlers
from app.api.sse import sse_bytes
from app.client import _sse_events
from app.db.errors import database_error
from app.errors import Unauthorized
from app.events.subscription import HubEvent, LiveEvent
from app.schemas.runs import EventOut


def leaving_the_data_layer(driver_error: Exception) -> Exception:
    """What the data layer raises for `driver_error` (app/db/errors.py translates it)."""
    error = database_error(driver_error)
    assert error is not None
    return error


POOL_TIMEOUT = leaving_the_data_layer(
    sqlalchemy.exc.TimeoutError(
        "QueuePool limit of size 10 overflow 10 reached, connection timed out, timeout 10.00"
    )
)
OUTAGE = leaving_the_data_layer(
    sqlalchemy.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused"))
)


def failing_app(error: Exception) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/fail")
    async def fail() -> None:
        raise error

    return TestClient(app, raise_server_exceptions=False)


def test_an_exhausted_pool_is_a_busy_503_with_retry_after() -> None:
    response = failing_app(POOL_TIMEOUT).get("/fail")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "the service is busy, retry shortly"
    assert int(response.headers["retry-after"]) > 0


def test_an_unreachable_database_is_still_an_outage_503() -> None:
    response = failing_app(OUTAGE).get("/fail")
    assert response.status_code == 503
    assert response.json()["detail"] == "the database is unreachable"


def event(event_id: int) -> HubEvent:
    out = EventOut(
        id=event_id, run_id=uuid.uuid4(), name="a.b", payload={}, created_at=datetime.now(UTC)
    )
    return HubEvent(out, "o", 1, out.model_dump_json())


async def events_then(error: Exception) -> AsyncGenerator[list[HubEvent | LiveEvent]]:
    yield [event(1)]
    raise error


async def frames(error: Exception) -> list[tuple[str | None, str | None, dict[str, object]]]:
    sent = b"".join([chunk async for chunk in sse_bytes(events_then(error))])
    return [
        (i, name, json.loads(data))
        for i, name, data in _sse_events(iter(sent.decode().split("\n")))
    ]


@pytest.mark.parametrize("error", [POOL_TIMEOUT, OUTAGE])
async def test_a_database_failure_mid_stream_ends_it_with_one_warning(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.api.sse"):
        sent = await frames(error)
    assert [(i, name) for i, name, _ in sent] == [("1", "a.b"), (None, "stream.reconnect")]
    assert sent[-1][2]["reason"] == "server_error"
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert caplog.records[0].exc_info is None  # one line, no traceback


async def test_a_revoked_token_ends_the_stream_for_good() -> None:
    sent = await frames(Unauthorized("revoked"))
    assert sent[-1] == (None, "stream.end", {"reason": "token_revoked"})


async def test_a_bug_mid_stream_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.api.sse"):
        sent = await frames(KeyError("bug"))
    assert sent[-1][1] == "stream.reconnect"
    assert caplog.records[0].exc_info is not None
