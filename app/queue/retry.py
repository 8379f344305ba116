"""Which failures are transient (retry the job) and which are final."""

from __future__ import annotations

import psycopg
import sqlalchemy.exc

from app.errors import CerebrosError


class TransientError(CerebrosError):
    """The job could not finish for a reason outside the run (database away, ...)."""


def is_transient(exc: BaseException) -> bool:
    """Connection-level database failures: the run itself is fine, try again later.

    Wrappers (procrastinate's ConnectorException, SQLAlchemy's DBAPIError) are looked
    through to the error that caused them.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_transient_one(current):
            return True
        current = current.__cause__
    return False


def _is_transient_one(exc: BaseException) -> bool:
    if isinstance(exc, TransientError | psycopg.OperationalError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc.orig, psycopg.OperationalError | psycopg.InterfaceError
        )
    return isinstance(exc, sqlalchemy.exc.TimeoutError | sqlalchemy.exc.InterfaceError)
