"""Driver errors, translated once where they leave the data layer.

SQLAlchemy, psycopg and procrastinate (which wraps psycopg's errors in its own
`ConnectorException`) each say "the database cannot serve us now" their own way. Here, and
nowhere above, those become two domain errors, both retryable:

- `DatabaseUnavailable`: the server is unreachable, the connection broke, or it refused the
  work for now (psycopg's `OperationalError`: shutdown, cancelled query, deadlock, ...).
- `DatabaseBusy`: this process's connection pool had no connection free in time; the
  database itself is fine.

Where: every engine made by `app.db.session.create_engine` translates its own errors (the
`handle_error` event, and a pool that reports its checkout timeout); a raw driver call
(procrastinate on a connection of ours) runs inside `translate_driver_errors()`. Any other
driver error (a constraint violation, a syntax error) passes unchanged: it is the caller's
business or a bug, not the database being away.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import sqlalchemy.exc
from procrastinate.exceptions import ConnectorException
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection

from app.errors import CerebrosError

__all__ = [
    "DRIVER_ERRORS",
    "BusyReportingPool",
    "DatabaseBusy",
    "DatabaseUnavailable",
    "database_error",
    "translate_driver_errors",
    "translate_engine_errors",
]

# psycopg's classes for "not now": connection failures and server-side refusals.
_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError)

# The driver's own errors that are left as they are (not outages): a bug, or a signal the
# caller handles (IntegrityError).
DRIVER_ERRORS: tuple[type[Exception], ...] = (sqlalchemy.exc.DBAPIError, psycopg.Error)


class DatabaseUnavailable(CerebrosError):
    """The database cannot serve us now (unreachable, connection lost, work refused).

    Its detail reads "cannot connect to the database: <the driver's first line>", what the
    CLI printed for a driver's OperationalError before the translation moved here.
    """

    retryable = True


class DatabaseBusy(CerebrosError):
    """No pooled database connection was free in time.

    This process is busy; the database is fine.
    """

    retryable = True


def _reason(exc: BaseException) -> str:
    # A SQLAlchemy error's str() adds a "Background on this error" link; its first arg does not.
    text = exc.args[0] if isinstance(exc, sqlalchemy.exc.SQLAlchemyError) and exc.args else exc
    lines = str(text).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def database_error(exc: BaseException) -> CerebrosError | None:
    """The domain error `exc` stands for, or None when it is not a database outage.

    Args:
        exc: An error raised by SQLAlchemy, psycopg or procrastinate's connector.

    Returns:
        `DatabaseBusy` for a pool checkout timeout, `DatabaseUnavailable` for a
        connection-level failure, None for everything else.
    """
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # SQLAlchemy's only one: the pool's
        return DatabaseBusy(f"no database connection free in time: {_reason(exc)}")
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc.orig, _UNAVAILABLE):
            cause = exc.orig if exc.orig is not None else exc
            return DatabaseUnavailable(f"cannot connect to the database: {_reason(cause)}")
        return None
    if isinstance(exc, ConnectorException):  # procrastinate keeps the driver's error as cause
        return None if exc.__cause__ is None else database_error(exc.__cause__)
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable(f"cannot connect to the database: {_reason(exc)}")
    return None


@contextmanager
def translate_driver_errors() -> Iterator[None]:
    """Raise a database outage in the block as `DatabaseUnavailable`/`DatabaseBusy`.

    For calls that bypass the engine's own translation: procrastinate on a raw connection,
    psycopg directly. Other errors pass unchanged. Works around `await` too.
    """
    try:
        yield
    except CerebrosError:
        raise
    except Exception as exc:
        error = database_error(exc)
        if error is None:
            raise
        raise error from exc


def _on_engine_error(context: ExceptionContext) -> BaseException | None:
    """SQLAlchemy's `handle_error` hook: the error to raise instead, or None to keep it."""
    if context.is_pre_ping:
        # The pool's liveness check: the pool replaces a dead connection itself, and it only
        # recognises SQLAlchemy's own errors.
        return None
    error = context.sqlalchemy_exception
    if not isinstance(error, sqlalchemy.exc.DBAPIError):
        return None  # not the driver's (a statement or type-processing error, a cancellation)
    return database_error(error)


def translate_engine_errors(engine: AsyncEngine) -> None:
    """Make `engine` raise domain errors for database outages (see the module docstring)."""
    event.listen(engine.sync_engine, "handle_error", _on_engine_error, retval=True)


class BusyReportingPool(AsyncAdaptedQueuePool):
    """The async queue pool, raising `DatabaseBusy` when no connection is free in time.

    A checkout timeout never reaches `handle_error` (no driver call failed), so the pool
    says it itself.
    """

    def connect(self) -> PoolProxiedConnection:
        try:
            return super().connect()
        except sqlalchemy.exc.TimeoutError as exc:
            busy = database_error(exc)
            assert busy is not None
            raise busy from exc
