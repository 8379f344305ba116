"""A run followed from POST to its final state through a real API and a real worker."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support.processes import api_server, service_env, wait_final, worker_process

pytestmark = pytest.mark.slow


def test_run_goes_from_queued_to_succeeded(database_url: str, tmp_path: Path) -> None:
    env = service_env(database_url, CEREBROS_ARTIFACTS_DIR=str(tmp_path / "artifacts"))
    spec = {
        "dataset_id": "iris",
        "objective": "val_accuracy",
        "search_space": {"layers": [1], "neurons": [8, 16]},
        "budget": {"max_trials": 2},
        "parameters": {"strategy": "random", "epochs": 3},  # every trial to 3 epochs
    }
    with api_server(env, tmp_path) as base:
        created = httpx.post(f"{base}/runs", json=spec, timeout=10)
        assert created.status_code == 202
        run_id = created.json()["id"]
        assert created.json()["status"] == "queued"
        with worker_process(env, tmp_path):
            run = wait_final(base, run_id)
    assert run["status"] == "succeeded", run
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT run_status, job_status, attempts FROM nas_run_jobs WHERE run_id = %s",
            (run_id,),
        ).fetchone()
        trials = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE epochs_run = 3) FROM trials "
            "WHERE run_id = %s AND status = 'completed'",
            (run_id,),
        ).fetchone()
    assert row == ("succeeded", "succeeded", 1)
    assert trials == (2, 2)  # both candidates really trained, every epoch
    result = run["result"]
    assert isinstance(result, dict) and result["trials_completed"] == 2
    assert result["best_score"] > 0.34  # better than guessing one of iris' three classes
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT name FROM run_artifacts WHERE run_id = %s AND name = %s",
            (run_id, result["artifacts"]["best_model"]),
        ).fetchall()
    assert stored == [("best_model.keras",)]  # in Postgres, for any API on any host


def test_invalid_job_arguments_fail_the_run_without_retry(
    database_url: str, tmp_path: Path
) -> None:
    """A job whose stored spec cannot be run fails the run at once, reason on the run."""
    env = service_env(database_url)
    with api_server(env, tmp_path) as base:
        created = httpx.post(
            f"{base}/runs",
            json={"dataset_id": "iris", "objective": "val_accuracy"},
            timeout=10,
        ).json()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE runs SET spec = spec || '{\"dataset_id\": 42}' WHERE id = %s",
                (created["id"],),
            )
        with worker_process(env, tmp_path):
            run = wait_final(base, created["id"])
    assert run["status"] == "failed"
    error = run["error"]
    assert isinstance(error, dict) and error["type"] == "invalid_arguments"
    assert "dataset_id" in error["message"]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT job_status, attempts FROM nas_run_jobs WHERE run_id = %s", (created["id"],)
        ).fetchone()
    assert row == ("failed", 1)
