"""HTTP side of authentication: the 401 problem (with `WWW-Authenticate`) and its OpenAPI entry."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.api.problems import error_problem
from app.errors import Unauthorized
from app.schemas.problems import Problem

UNAUTHORIZED_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "Missing, invalid or revoked bearer token"},
}


def www_authenticate(exc: Unauthorized) -> str:
    """RFC 6750 challenge: `error="invalid_token"` only when a token was sent."""
    error = exc.extra.get("error")
    return f'Bearer realm="cerebros", error="{error}"' if error else 'Bearer realm="cerebros"'


async def _on_unauthorized(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Unauthorized)
    return error_problem(exc, headers={"WWW-Authenticate": www_authenticate(exc)})


def install_auth_handlers(app: FastAPI) -> None:
    """401s carry the challenge header (the generic CerebrosError handler has no headers)."""
    app.add_exception_handler(Unauthorized, _on_unauthorized)


_TICKET_IN_QUERY = re.compile(r"(?<=[?&]ticket=)[^&\s]+")


class StreamTicketLogFilter(logging.Filter):
    """Masks `?ticket=` in access-log lines (tickets are single use; defence in depth)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(arg, str) and "ticket=" in arg for arg in record.args
        ):
            record.args = tuple(
                _TICKET_IN_QUERY.sub("***", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


def mask_stream_tickets(logger_name: str = "uvicorn.access") -> None:
    """Install the filter on uvicorn's access logger (once; logging keeps it across configs)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, StreamTicketLogFilter) for f in logger.filters):
        logger.addFilter(StreamTicketLogFilter())
