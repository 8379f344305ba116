"""Every error leaves the API as a JSON problem body naming the offending field.

`PROBLEMS` is the one place where a domain error becomes an HTTP status and title: the
errors themselves know nothing of HTTP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.db.errors import DRIVER_ERRORS, DatabaseBusy, DatabaseUnavailable
from app.errors import (
    CerebrosError,
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TooManyRuns,
    Unauthorized,
)
from app.schemas.problems import FieldError, Problem

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    """How one class of error is answered.

    Attributes:
        status: The HTTP status.
        title: The problem's title.
        detail: A fixed detail instead of the error's own (which may name internals).
        retry_after: Seconds for `Retry-After`, for errors a client should retry.
    """

    status: int
    title: str
    detail: str | None = None
    retry_after: int | None = None


# Looked up along the error's class hierarchy: the nearest class listed wins.
PROBLEMS: dict[type[CerebrosError], ProblemType] = {
    NotFound: ProblemType(404, "Not found"),
    Conflict: ProblemType(409, "Conflict"),
    InvalidInput: ProblemType(422, "Invalid input"),
    PayloadTooLarge: ProblemType(413, "Payload too large"),
    Unauthorized: ProblemType(401, "Unauthorized"),
    TooManyRuns: ProblemType(429, "Too many runs"),
    # The pool had no connection free in time: the database is fine, this process is busy.
    DatabaseBusy: ProblemType(
        503, "Service busy", "the service is busy, retry shortly", retry_after=1
    ),
    # The database is away: say so (clients retry), never a 500 or a hang.
    DatabaseUnavailable: ProblemType(
        503, "Service unavailable", "the database is unreachable", retry_after=2
    ),
    CerebrosError: ProblemType(500, "Internal error"),
}


def problem_type(exc: CerebrosError) -> ProblemType:
    """The `PROBLEMS` entry of the nearest listed class of `exc`."""
    for cls in type(exc).__mro__:
        found = PROBLEMS.get(cls)
        if found is not None:
            return found
    raise AssertionError("CerebrosError itself is listed")  # pragma: no cover


def problem_response(
    status: int,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail, errors=errors or [])
    return JSONResponse(
        body.model_dump(), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def validation_errors(errors: list[dict[str, Any]]) -> list[FieldError]:
    out = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        message = str(err.get("msg"))
        if err.get("type") == "json_invalid":
            loc = ("body",)
            # FastAPI's msg is only "JSON decode error"; the reason is in ctx.
            reason = (err.get("ctx") or {}).get("error")
            message = f"{message}: {reason}" if reason else message
        out.append(FieldError(field=_field_name(loc), message=message, type=err.get("type")))
    return out


async def _on_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(list(exc.errors()))
    fields = ", ".join(sorted({e.field for e in errors}))
    return problem_response(422, "Invalid input", f"invalid fields: {fields}", errors)


def error_problem(exc: CerebrosError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The problem response for `exc`, as `PROBLEMS` says, with `headers` added."""
    kind = problem_type(exc)
    field = exc.extra.get("field")
    detail = kind.detail or exc.detail
    errors = [FieldError(field=field, message=exc.detail)] if field else []
    if kind.retry_after is not None:
        headers = {"Retry-After": str(kind.retry_after), **(headers or {})}
    return problem_response(kind.status, kind.title, detail, errors, headers=headers)


async def _on_cerebros_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CerebrosError)
    return error_problem(exc)


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(
        exc.status_code, str(exc.detail), str(exc.detail), headers=getattr(exc, "headers", None)
    )


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(500, "Internal error", "an unexpected error occurred")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(CerebrosError, _on_cerebros_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    # Named classes are answered by the app's own handler; only `Exception` falls to the
    # server's, which re-raises after answering (a second traceback in the log).
    for exc_type in (*DRIVER_ERRORS, OSError, Exception):
        app.add_exception_handler(exc_type, _on_unexpected)
