"""Serves the dashboard's static files at /ui/, with a strict Content Security Policy.

The page is plain HTML, CSS and JavaScript shipped in this package: nothing is fetched from
another origin, no inline script or style runs, and every string from the API is inserted as
text. The files hold no data, so /ui needs no token; the page asks for one and calls the API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
MOUNT_PATH = "/ui"

#: Scripts, styles, images and API calls from this origin only; no plugins, no framing, no
#: <base> rewriting. SVG charts are built with DOM calls, so no 'unsafe-inline' anywhere.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidated on each load (ETag), so a new release shows at once.
    "Cache-Control": "no-cache",
}


class DashboardFiles(StaticFiles):
    """StaticFiles whose every file carries the security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def install_dashboard(app: FastAPI, *, auth_enabled: bool) -> None:
    """Mount the dashboard at /ui/ (/ui redirects there; index.html is the page).

    `/ui/config.json` tells the page whether to ask for a token, so it need not probe with
    a request that fails (and shows as an error in the browser's console).
    """

    @app.get(f"{MOUNT_PATH}/config.json", include_in_schema=False)
    async def dashboard_config() -> JSONResponse:
        return JSONResponse({"auth": auth_enabled}, headers=SECURITY_HEADERS)

    app.mount(MOUNT_PATH, DashboardFiles(directory=STATIC_DIR, html=True), name="ui")
