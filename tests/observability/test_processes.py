"""Real API and worker processes: counters move when a run trains, every log line is JSON,
and readiness follows the database down and back up."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.db.embedded import start_embedded_postgres
from tests.acceptance.test_database_restart import _pg_ctl, private_postgres  # noqa: F401
from tests.acceptance.test_reliability import wait_for
from tests.support.processes import (
    api_server,
    free_port,
    service_env,
    start,
    stop,
    wait_final,
    wait_http,
)

pytestmark = pytest.mark.slow

TINY_SPEC = {
    "dataset_id": "iris",
    "objective": "val_accuracy",
    "search_space": {"layers": [1], "neurons": [8]},
    "budget": {"max_trials": 1},
    # Random search: one trial of 2 epochs (asha, the default, would train 1).
    "parameters": {"strategy": "random", "epochs": 2, "early_stopping_patience": 5},
}


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    assert lines, f"{path} is empty"
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"{path.name}: not a JSON line: {line!r}")
    return entries


def test_a_run_moves_the_counters_and_every_log_line_is_json(
    database_url: str, tmp_path: Path
) -> None:
    env = service_env(
        database_url,
        CEREBROS_LOG_FORMAT="json",
        CEREBROS_LOG_LEVEL="debug",  # every library's chatter must come out as JSON too
        CEREBROS_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
    )
    metrics_port = free_port()
    worker_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    with api_server(env, tmp_path) as base:
        worker = start(
            ["worker", "--processes", "1", "--metrics-port", str(metrics_port)],
            env,
            tmp_path / "worker.log",
        )
        try:
            wait_http(worker_metrics)
            before = scrape(worker_metrics)
            run_id = httpx.post(f"{base}/runs", json=TINY_SPEC, timeout=10).json()["id"]
            run = wait_final(base, run_id)
            assert run["status"] == "succeeded", run
            api = scrape(f"{base}/metrics")
            after = scrape(worker_metrics)
        finally:
            stop(worker)
    completed = {"status": "completed"}
    assert value(before, "cerebros_trials_finished_total", **completed) == 0
    assert value(after, "cerebros_trials_finished_total", **completed) == 1
    assert value(before, "cerebros_epochs_finished_total") == 0
    assert value(after, "cerebros_epochs_finished_total") == 2
    assert value(after, "cerebros_trial_duration_seconds_count", **completed) == 1
    assert value(after, "cerebros_trial_duration_seconds_sum", **completed) > 0
    assert value(api, "cerebros_runs", status="succeeded") == 1
    # The run's first job (it queued the trial), the trial's job, the advance that ended it.
    assert value(api, "cerebros_queue_jobs", queue="ml", status="succeeded") == 3
    assert value(api, "cerebros_workers_live") == 1
    posts = value(api, "cerebros_http_requests_total", method="POST", route="/runs", status="202")
    assert posts == 1

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id FROM procrastinate_jobs WHERE args->>'run_id' = %s", (run_id,)
        ).fetchall()
    job_ids = {r[0] for r in rows}
    assert len(job_ids) == 3
    worker_lines = json_lines(tmp_path / "worker.log")
    assert all({"ts", "level", "logger", "message"} <= e.keys() for e in worker_lines)
    about_the_run = [e for e in worker_lines if e.get("run_id") == run_id]
    assert about_the_run, "no worker line names the run"
    assert {e.get("job_id") for e in about_the_run} == job_ids  # every job of the run logged
    actions = {e.get("action") for e in about_the_run}
    assert {"start_job", "job_success"} <= actions, actions
    # Every line of the run's jobs names the run, and every line names the worker.
    assert all(e.get("worker") for e in worker_lines)
    assert not [e for e in worker_lines if e.get("job_id") in job_ids and e.get("run_id") != run_id]

    api_lines = json_lines(tmp_path / "api.log")
    access = [e for e in api_lines if e["logger"] == "uvicorn.access"]
    assert any((e["method"], e["path"], e["status"]) == ("POST", "/runs", 202) for e in access), (
        access
    )


def test_readiness_follows_the_database_down_and_up(
    private_postgres: tuple[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    url, pgdata = private_postgres
    env = service_env(url)
    with api_server(env, tmp_path) as base:
        assert httpx.get(f"{base}/health/ready", timeout=10).status_code == 200
        _pg_ctl(pgdata, "-m", "fast", "stop")
        try:
            started = time.monotonic()
            down = httpx.get(f"{base}/health/ready", timeout=10)
            assert time.monotonic() - started < 5  # a probe never hangs on the database
            assert down.status_code == 503, down.text
            assert down.headers["content-type"] == "application/problem+json"
            assert "database" in down.json()["failed"]
            assert down.json()["checks"]["migrations"]["ok"] is None
            assert httpx.get(f"{base}/health/live", timeout=10).status_code == 200
            during = scrape(f"{base}/metrics")
            assert value(during, "cerebros_scrape_database_up") == 0
            assert ("cerebros_runs", (("status", "queued"),)) not in during  # never stale
            workers = httpx.get(f"{base}/health/workers", timeout=10)
            assert workers.status_code == 503 and workers.json()["failed"] == ["database"]
        finally:
            start_embedded_postgres(pgdata.parent)
        wait_for(
            lambda: httpx.get(f"{base}/health/ready", timeout=10).status_code == 200,
            timeout=30,
            what="readiness after the restart",
        )
        body = httpx.get(f"{base}/health/ready", timeout=10).json()
        assert body["checks"]["event_hub"]["ok"] is True
        assert value(scrape(f"{base}/metrics"), "cerebros_event_hub_reconnects_total") >= 1
