"""Errors as data: retryability on the error, the queue and the pipeline reading it, and the
API's one table from error class to HTTP problem."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import psycopg
import pytest
import sqlalchemy.exc
from fastapi import FastAPI
from fastapi.testclient import TestClient
from procrastinate.exceptions import ConnectorException, UniqueViolation
from procrastinate.jobs import Job

import app
from app.api.problems import PROBLEMS, install_problem_handlers, problem_type
from app.db.errors import (
    DatabaseBusy,
    DatabaseUnavailable,
    database_error,
    translate_driver_errors,
)
from app.errors import (
    CerebrosError,
    Conflict,
    InvalidInput,
    InvalidJobArguments,
    NotFound,
    TooManyRuns,
    TransientError,
    Unauthorized,
)
from app.pipeline.steps import interrupt_on_transient
from app.queue.retry import RetryRetryableErrors
from app.saga import StepInterrupted


def test_retryable_is_a_class_default_that_one_error_may_override() -> None:
    assert CerebrosError("x").retryable is False
    assert TransientError("x").retryable is True
    assert DatabaseUnavailable("x").retryable is True
    assert DatabaseBusy("x").retryable is True
    assert InvalidJobArguments("x").retryable is False
    assert Conflict("x", retryable=True).retryable is True
    assert DatabaseUnavailable("x", retryable=False).retryable is False
    assert DatabaseUnavailable("y").retryable is True  # the class keeps its default


def _job(attempts: int) -> Job:
    return Job(id=1, queue="ml", lock=None, queueing_lock=None, task_name="t", attempts=attempts)


@pytest.mark.parametrize(
    ("error", "attempts", "retried"),
    [
        (TransientError("interrupted"), 0, True),
        (DatabaseUnavailable("away"), 1, True),
        (DatabaseBusy("busy"), 0, True),
        (TransientError("interrupted"), 3, False),  # max_attempts reached
        (CerebrosError("final"), 0, False),
        (CerebrosError("final, but this one may be retried", retryable=True), 0, True),
        (TransientError("not this one", retryable=False), 0, False),
        (RuntimeError("a bug"), 0, False),
        (StepInterrupted("the saga's own signal: the job turns it into TransientError"), 0, False),
    ],
)
def test_the_queue_retries_what_says_it_is_retryable(
    error: BaseException, attempts: int, retried: bool
) -> None:
    strategy = RetryRetryableErrors(max_attempts=3, exponential_wait=2)
    decision = strategy.get_retry_decision(exception=error, job=_job(attempts))
    assert (decision is not None) is retried
    if decision is not None:
        assert decision.retry_at is not None  # procrastinate's waits still apply


async def test_a_step_is_interrupted_by_retryable_errors_only() -> None:
    @interrupt_on_transient
    async def step(error: Exception) -> None:
        raise error

    with pytest.raises(StepInterrupted) as interrupted:
        await step(DatabaseUnavailable("cannot connect to the database: gone"))
    assert isinstance(interrupted.value.__cause__, DatabaseUnavailable)
    with pytest.raises(StepInterrupted):
        await step(Conflict("retry me", retryable=True))
    for final in (Conflict("final"), ValueError("a bug")):
        with pytest.raises(type(final)):
            await step(final)


OPERATIONAL = psycopg.OperationalError("connection refused")
POOL_TIMEOUT = sqlalchemy.exc.TimeoutError("QueuePool limit of size 1 overflow 1 reached")


def _connector_error(cause: BaseException) -> ConnectorException:
    try:
        raise ConnectorException from cause
    except ConnectorException as exc:
        return exc


@pytest.mark.parametrize(
    ("driver_error", "expected"),
    [
        (POOL_TIMEOUT, DatabaseBusy),
        (sqlalchemy.exc.OperationalError("SELECT 1", {}, OPERATIONAL), DatabaseUnavailable),
        (
            sqlalchemy.exc.InterfaceError("SELECT 1", {}, psycopg.InterfaceError("closed")),
            DatabaseUnavailable,
        ),
        (
            sqlalchemy.exc.DBAPIError(
                "SELECT 1", {}, psycopg.DatabaseError("lost"), connection_invalidated=True
            ),
            DatabaseUnavailable,
        ),
        (OPERATIONAL, DatabaseUnavailable),
        (_connector_error(OPERATIONAL), DatabaseUnavailable),
        # Not outages: the caller's business or a bug, left as they are.
        (sqlalchemy.exc.IntegrityError("INSERT", {}, psycopg.IntegrityError("dup")), None),
        (sqlalchemy.exc.ProgrammingError("SELEC", {}, psycopg.ProgrammingError("syntax")), None),
        (psycopg.errors.UniqueViolation("dup"), None),
        (_connector_error(psycopg.errors.UniqueViolation("dup")), None),
        (UniqueViolation(constraint_name="c", queueing_lock=None), None),
        (ConnectionError("not the database's"), None),
        (ValueError("a bug"), None),
    ],
)
def test_database_error_names_outages_only(
    driver_error: BaseException, expected: type[CerebrosError] | None
) -> None:
    translated = database_error(driver_error)
    if expected is None:
        assert translated is None
    else:
        assert type(translated) is expected
        assert translated.retryable


async def test_raw_driver_calls_are_translated_in_the_block() -> None:
    async def defer() -> None:
        raise _connector_error(OPERATIONAL)

    with pytest.raises(DatabaseUnavailable) as caught, translate_driver_errors():
        await defer()
    assert caught.value.__cause__ is not None
    assert "connection refused" in caught.value.detail
    for untouched in (_connector_error(psycopg.errors.UniqueViolation("dup")), KeyError("k")):
        with pytest.raises(type(untouched)), translate_driver_errors():
            raise untouched
    already = Conflict("ours already")
    with pytest.raises(Conflict) as ours, translate_driver_errors():
        raise already
    assert ours.value is already


def _cerebros_errors() -> set[type[CerebrosError]]:
    for module in pkgutil.walk_packages(app.__path__, "app."):
        # Not Keras (app.nas: slow to import), nor a module that runs something.
        if not module.name.startswith("app.nas") and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: set[type[CerebrosError]] = set()
    pending: list[type[CerebrosError]] = [CerebrosError]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_no_error_carries_http_codes() -> None:
    for cls in _cerebros_errors():
        assert not {"status_code", "title", "status"} & set(vars(cls)), cls


def test_every_error_maps_to_a_problem() -> None:
    for cls in _cerebros_errors():
        kind = problem_type(cls("x"))
        assert 400 <= kind.status < 600 and kind.title, cls
    assert set(PROBLEMS) <= _cerebros_errors()


def failing_app(error: Exception) -> TestClient:
    api = FastAPI()
    install_problem_handlers(api)

    @api.get("/fail")
    async def fail() -> None:
        raise error

    return TestClient(api, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("error", "status", "title", "detail", "retry_after"),
    [
        (NotFound("run 1 not found"), 404, "Not found", "run 1 not found", None),
        (Conflict("taken"), 409, "Conflict", "taken", None),
        (InvalidInput("bad", field="pattern"), 422, "Invalid input", "bad", None),
        (TooManyRuns("too many"), 429, "Too many runs", "too many", None),
        (Unauthorized("no token"), 401, "Unauthorized", "no token", None),
        (
            DatabaseBusy("no database connection free in time: QueuePool limit"),
            503,
            "Service busy",
            "the service is busy, retry shortly",
            "1",
        ),
        (
            DatabaseUnavailable("cannot connect to the database: connection refused"),
            503,
            "Service unavailable",
            "the database is unreachable",
            "2",
        ),
        (InvalidJobArguments("not a UUID"), 500, "Internal error", "not a UUID", None),
        (RuntimeError("a bug"), 500, "Internal error", "an unexpected error occurred", None),
    ],
)
def test_the_api_answers_each_error_from_the_one_table(
    error: Exception, status: int, title: str, detail: str, retry_after: str | None
) -> None:
    response = failing_app(error).get("/fail")
    body: dict[str, Any] = response.json()
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert (body["status"], body["title"], body["detail"]) == (status, title, detail)
    assert response.headers.get("retry-after") == retry_after
    if isinstance(error, InvalidInput):
        assert body["errors"] == [{"field": "pattern", "message": "bad", "type": None}]
