"""/metrics, /health/live, /health/ready and /health/workers of the real app, in process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.api.main import create_app
from app.config import Settings
from app.db.migrate import upgrade
from tests.support.postgres import create_database, drop_database

pytestmark = pytest.mark.postgres

SPEC = {
    "dataset_id": "iris",
    "objective": "val_accuracy",
    "search_space": {"layers": [1], "neurons": [8]},
    "budget": {"max_trials": 1},
    "parameters": {"epochs": 2},
}


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=database_url, auth_enabled=False))) as c:
        yield c


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and sorted labels (parsing is the check)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scrape: dict[Any, float], name: str, **labels: str) -> float | None:
    return scrape.get((name, tuple(sorted(labels.items()))))


def test_metrics_count_runs_jobs_requests_and_the_hub(client: TestClient) -> None:
    created = client.post("/runs", json=SPEC)
    assert created.status_code == 202
    run_id = created.json()["id"]
    assert client.get(f"/runs/{run_id}").status_code == 200
    assert client.get(f"/runs/{run_id}/", follow_redirects=False).status_code == 307

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    scrape = samples(response.text)
    assert value(scrape, "cerebros_scrape_database_up") == 1
    assert value(scrape, "cerebros_runs", status="queued") == 1
    for status in ("running", "succeeded", "failed", "cancelled"):
        assert value(scrape, "cerebros_runs", status=status) == 0
    assert value(scrape, "cerebros_queue_jobs", queue="ml", status="todo") == 1
    assert value(scrape, "cerebros_queue_jobs", queue="ml", status="succeeded") == 0
    assert value(scrape, "cerebros_workers_live") == 0
    assert value(scrape, "cerebros_event_hub_connected") == 1
    assert value(scrape, "cerebros_sse_clients") == 0
    assert value(scrape, "cerebros_event_hub_reconnects_total") == 0
    requests = "cerebros_http_requests_total"
    assert value(scrape, requests, method="POST", route="/runs", status="202") == 1
    assert value(scrape, requests, method="GET", route="/runs/{run_id}", status="200") == 1
    assert value(scrape, requests, method="GET", route="<unmatched>", status="307") == 1
    latency = "cerebros_http_request_duration_seconds_count"
    assert value(scrape, latency, method="POST", route="/runs", status="202") == 1
    assert value(scrape, "process_cpu_seconds_total") is not None
    # Nothing about who owns what: no run id, no owner in any label.
    assert run_id not in response.text and "local" not in response.text


def test_metrics_speak_openmetrics_when_asked(client: TestClient) -> None:
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_the_operator_endpoints_are_left_out_of_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/metrics" not in paths and "/health/workers" not in paths
    assert {"/health", "/health/live", "/health/ready"} <= paths.keys()


def test_live_needs_nothing(client: TestClient) -> None:
    for path in ("/health", "/health/live"):
        response = client.get(path)
        assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_ready_names_every_check(client: TestClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["ready"], body["failed"]) == (True, [])
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "migrations": True,
        "event_hub": True,
    }


def test_ready_is_503_while_migrations_are_behind(admin_url: str) -> None:
    url = create_database(admin_url, "cerebros_obs_behind")
    try:
        upgrade(url, "0010")
        settings = Settings(database_url=url, auth_enabled=False)
        with TestClient(create_app(settings)) as client:
            response = client.get("/health/ready")
            upgrade(url)
            again = client.get("/health/ready")
    finally:
        drop_database(admin_url, url)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["failed"], body["ready"]) == (503, ["migrations"], False)
    assert body["checks"]["migrations"]["detail"].startswith("database at 0010, this code expects")
    assert body["checks"]["database"]["ok"] is True
    assert again.status_code == 200, again.text


def test_workers_are_listed_with_their_liveness(client: TestClient, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM procrastinate_workers")
        conn.execute(
            "INSERT INTO procrastinate_workers (last_heartbeat) "
            "VALUES (now()), (now() - interval '1 hour')"
        )
    response = client.get("/health/workers")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["live"], body["required"], body["stalled_after_seconds"]) == (1, 1, 30.0)
    assert [w["live"] for w in body["workers"]] == [True, False]
    assert body["workers"][1]["seconds_since_heartbeat"] >= 3600

    two = client.get("/health/workers", params={"min": 2})
    assert two.status_code == 503
    assert two.headers["content-type"] == "application/problem+json"
    assert (two.json()["failed"], two.json()["live"]) == (["workers"], 1)
    assert client.get("/health/workers", params={"min": 0}).status_code == 200

    scrape = samples(client.get("/metrics").text)
    assert value(scrape, "cerebros_workers_live") == 1
    assert value(scrape, "cerebros_workers_registered") == 2
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM procrastinate_workers")
    none = client.get("/health/workers")
    assert (none.status_code, none.json()["live"]) == (503, 0)
