"""One exception hierarchy for the service; the API maps each class to an HTTP problem."""

from __future__ import annotations

from typing import Any


class CerebrosError(Exception):
    """Base of every error the service raises on purpose."""

    status_code = 500
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(CerebrosError):
    status_code = 404
    title = "Not found"


class Conflict(CerebrosError):
    status_code = 409
    title = "Conflict"


class InvalidInput(CerebrosError):
    status_code = 422
    title = "Invalid input"


class PayloadTooLarge(CerebrosError):
    status_code = 413
    title = "Payload too large"


class Unauthorized(CerebrosError):
    status_code = 401
    title = "Unauthorized"


class TooManyRuns(CerebrosError):
    """An owner already has as many queued + running runs as allowed."""

    status_code = 429
    title = "Too many runs"


class InvalidJobArguments(CerebrosError):
    """A queue job whose arguments cannot be run: failing it again would not help."""


class EngineDisabled(CerebrosError):
    """The NAS engine is switched off by configuration."""
