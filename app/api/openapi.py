"""The OpenAPI document as the API really answers: every error is `application/problem+json`.

FastAPI documents `responses={...: {"model": Problem}}` under `application/json` and adds its
own `HTTPValidationError` 422; the handlers in `problems.py` answer with the Problem model and
the problem media type. This rewrites the generated document to say exactly that, and adds
the 503 that any route touching the database can answer and the 400 Starlette gives a body
it cannot decode.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.problems import PROBLEM_MEDIA_TYPE

PROBLEM_REF = "#/components/schemas/Problem"
UNAVAILABLE = "Database unavailable (retry after `Retry-After` seconds)"
UNREADABLE = "The body could not be read (not UTF-8 JSON)"
NO_DATABASE_PATHS = frozenset({"/health"})


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
    }


def problem_responses(document: dict[str, Any]) -> dict[str, Any]:
    """Rewrite every 4xx/5xx response of `document` (in place) to the problem media type."""
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                if code[0] in "45":
                    responses[code] = _problem(response.get("description", ""))
            if "requestBody" in operation:
                responses.setdefault("400", _problem(UNREADABLE))
            if path not in NO_DATABASE_PATHS:
                responses.setdefault("503", _problem(UNAVAILABLE))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def install_problem_openapi(app: FastAPI) -> None:
    """Serve the rewritten document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = problem_responses(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
