"""405 answers list every method of the path in `Allow` (Starlette names only one route's)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Match

from app.api.problems import problem_response

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Methods some route fully matches for this path (asks each route, nested ones too)."""
    allowed = []
    for method in METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in app.router.routes):
            allowed.append(method)
    return allowed


def install_allow_handler(app: FastAPI) -> None:
    async def on_method_not_allowed(request: Request, _: Exception) -> JSONResponse:
        allow = ", ".join(allowed_methods(app, request))
        return problem_response(
            405, "Method not allowed", f"allowed: {allow}", headers={"Allow": allow}
        )

    app.add_exception_handler(405, on_method_not_allowed)
