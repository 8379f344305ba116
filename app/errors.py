"""One exception hierarchy for the service.

Errors say what went wrong and whether trying again may help (`retryable`), nothing about
transports: the API maps each class to an HTTP problem in one table (app/api/problems.py),
the queue retries a job whose error is retryable (app/queue/retry.py).
"""

from __future__ import annotations

from typing import Any


class CerebrosError(Exception):
    """Base of every error the service raises on purpose.

    Attributes:
        detail: What went wrong, for a person.
        extra: Keyword details (`field` names the offending input).
        retryable: Whether the same work may succeed later (the database was away, a step
            was interrupted). A class sets its default; one error may override it.
    """

    retryable: bool = False

    def __init__(self, detail: str, *, retryable: bool | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        if retryable is not None:
            self.retryable = retryable  # this error only; the class keeps its default


class NotFound(CerebrosError):
    """The thing asked for does not exist (or is not the caller's)."""


class Conflict(CerebrosError):
    """The request contradicts the current state (an id taken, a run already final)."""


class InvalidInput(CerebrosError):
    """An input is malformed or out of range; `extra["field"]` names it."""


class PayloadTooLarge(CerebrosError):
    """A request body is over the configured limit."""


class Unauthorized(CerebrosError):
    """No valid credentials; `extra["error"]` is the RFC 6750 error code, if any."""


class TooManyRuns(CerebrosError):
    """An owner already has as many queued + running runs as allowed."""


class TransientError(CerebrosError):
    """Work that could not finish for a reason outside it (the database away, a step interrupted).

    Its state is intact, so the same work tried later resumes.
    """

    retryable = True


class InvalidJobArguments(CerebrosError):
    """A queue job whose arguments cannot be run: failing it again would not help."""


class EngineDisabled(CerebrosError):
    """The NAS engine is switched off by configuration."""
