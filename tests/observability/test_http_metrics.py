"""HTTP request metrics: route templates (never raw paths), the status the client got."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.observability.http import UNMATCHED, install_http_metrics
from app.observability.metrics import ApiMetrics


class Outage(Exception):
    pass


def make_app() -> tuple[FastAPI, ApiMetrics]:
    app = FastAPI()
    metrics = ApiMetrics()
    install_http_metrics(app, metrics)

    @app.get("/runs/{run_id}")
    async def get_run(run_id: str) -> dict[str, str]:
        return {"id": run_id}

    @app.get("/outage")
    async def outage() -> None:
        raise Outage

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("bug")

    async def on_error(_: Request, exc: Exception) -> JSONResponse:
        status = 503 if isinstance(exc, Outage) else 500
        return JSONResponse({"status": status}, status_code=status)

    # Registered for Exception: Starlette answers it in ServerErrorMiddleware, the outermost
    # of its own middlewares (the API's generic handler maps database errors to 503 there).
    app.add_exception_handler(Exception, on_error)
    return app, metrics


def requests_total(metrics: ApiMetrics) -> dict[tuple[str, str, str], float]:
    families = text_string_to_metric_families(generate_latest(metrics.registry).decode())
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in families
        if family.name == "cerebros_http_requests"
        for s in family.samples
        if s.name == "cerebros_http_requests_total"
    }


def test_requests_are_counted_by_route_template_and_status() -> None:
    app, metrics = make_app()
    client = TestClient(app, raise_server_exceptions=False)
    for run in ("a", "b", "c"):
        assert client.get(f"/runs/{run}").status_code == 200
    assert client.post("/runs/a").status_code == 405
    assert requests_total(metrics) == {
        ("GET", "/runs/{run_id}", "200"): 3,
        ("POST", "/runs/{run_id}", "405"): 1,
    }
    text = generate_latest(metrics.registry).decode()
    assert (
        'cerebros_http_request_duration_seconds_count{method="GET",route="/runs/{run_id}"' in text
    )


def test_paths_no_route_answered_share_one_label() -> None:
    """Unique junk paths, and trailing-slash redirects of real routes, create no series."""
    app, metrics = make_app()
    client = TestClient(app, raise_server_exceptions=False)
    for n in range(5):
        assert client.get(f"/nothing/{n}").status_code == 404
        assert client.get(f"/runs/{n}/", follow_redirects=False).status_code == 307
    assert requests_total(metrics) == {("GET", UNMATCHED, "404"): 5, ("GET", UNMATCHED, "307"): 5}


def test_an_error_is_counted_with_the_status_the_client_got() -> None:
    app, metrics = make_app()
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/outage").status_code == 503
    assert client.get("/bug").status_code == 500
    assert requests_total(metrics) == {("GET", "/outage", "503"): 1, ("GET", "/bug", "500"): 1}


def test_two_apps_in_one_process_keep_their_own_counts() -> None:
    (first, first_metrics), (_, second_metrics) = make_app(), make_app()
    TestClient(first).get("/runs/x")
    assert requests_total(first_metrics) == {("GET", "/runs/{run_id}", "200"): 1}
    assert requests_total(second_metrics) == {}
