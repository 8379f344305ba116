"""Every error leaves the API as a JSON problem body naming the offending field."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import CerebrosError
from app.queue.retry import is_transient
from app.schemas.problems import FieldError, Problem

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


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


async def _on_cerebros_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CerebrosError)
    field = exc.extra.get("field")
    errors = [FieldError(field=field, message=exc.detail)] if field else []
    return problem_response(exc.status_code, exc.title, exc.detail, errors)


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(
        exc.status_code, str(exc.detail), str(exc.detail), headers=getattr(exc, "headers", None)
    )


def _pool_exhausted(exc: BaseException) -> bool:
    """The connection pool had no connection free in time (SQLAlchemy's only TimeoutError):
    the database is fine, this process is busy."""
    return isinstance(exc, sqlalchemy.exc.TimeoutError) or isinstance(
        exc.__cause__, sqlalchemy.exc.TimeoutError
    )


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    if _pool_exhausted(exc):
        return problem_response(
            503, "Service busy", "the service is busy, retry shortly", headers={"Retry-After": "1"}
        )
    if is_transient(exc):
        # The database is away: say so (clients retry), never a 500 or a hang.
        return problem_response(
            503, "Service unavailable", "the database is unreachable", headers={"Retry-After": "2"}
        )
    log.exception("unhandled error", exc_info=exc)
    return problem_response(500, "Internal error", "an unexpected error occurred")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(CerebrosError, _on_cerebros_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    for exc_type in (
        sqlalchemy.exc.DBAPIError,
        sqlalchemy.exc.TimeoutError,
        psycopg.Error,
        OSError,
        Exception,
    ):
        app.add_exception_handler(exc_type, _on_unexpected)
