"""Cancellation and crash recovery with real API and worker processes."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.processes import api_server, service_env, stop, wait_final, worker_process

pytestmark = pytest.mark.slow

LONG_SPEC: dict[str, Any] = {
    "dataset_id": "digits",
    "objective": "val_accuracy",
    "search_space": {"layers": [1, 2], "neurons": [16, 32, 64]},
    "budget": {"max_trials": 3},
    "parameters": {"epochs": 8, "seed": 11},
}


def rows(database_url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


def event_count(database_url: str, run_id: str, name: str) -> int:
    return int(
        rows(
            database_url,
            "SELECT count(*) FROM run_events WHERE run_id = %s AND name = %s",
            run_id,
            name,
        )[0][0]
    )


def wait_for(predicate: Any, timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not reached within {timeout}s")


def test_cancel_queued_run_never_executes(database_url: str, tmp_path: Path) -> None:
    env = service_env(database_url)
    with api_server(env, tmp_path) as base:
        run = httpx.post(f"{base}/runs", json=LONG_SPEC, timeout=10).json()
        cancelled = httpx.post(f"{base}/runs/{run['id']}/cancel", timeout=10)
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        again = httpx.post(f"{base}/runs/{run['id']}/cancel", timeout=10)
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
        with worker_process(env, tmp_path):
            time.sleep(4)  # a worker that would pick the job if it were still todo
        final = httpx.get(f"{base}/runs/{run['id']}", timeout=10).json()
    assert final["status"] == "cancelled"
    job = rows(
        database_url, "SELECT job_status, attempts FROM nas_run_jobs WHERE run_id = %s", run["id"]
    )
    assert job == [("cancelled", 0)]
    assert event_count(database_url, run["id"], "cerebros.nas.run.started") == 0
    assert event_count(database_url, run["id"], "cerebros.nas.run.cancelled") == 1


def test_cancel_running_run_stops_within_an_epoch_and_undoes(
    database_url: str, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    env = service_env(database_url, CEREBROS_ARTIFACTS_DIR=str(artifacts))
    spec = {**LONG_SPEC, "parameters": {"epochs": 200, "seed": 5}}
    with api_server(env, tmp_path) as base, worker_process(env, tmp_path):
        run = httpx.post(f"{base}/runs", json=spec, timeout=10).json()
        wait_for(
            lambda: event_count(database_url, run["id"], "cerebros.nas.trial.epoch") >= 2,
            what="training",
        )
        epochs_before = event_count(database_url, run["id"], "cerebros.nas.trial.epoch")
        response = httpx.post(f"{base}/runs/{run['id']}/cancel", timeout=10)
        assert response.status_code == 200
        final = wait_final(base, run["id"], timeout=60)
        late = httpx.post(f"{base}/runs/{run['id']}/cancel", timeout=10)
    assert final["status"] == "cancelled"
    assert late.status_code == 200  # idempotent on a cancelled run
    # Stopped promptly: at most a couple of epochs after the request, far from 200.
    assert event_count(database_url, run["id"], "cerebros.nas.trial.epoch") <= epochs_before + 3
    cancelled = rows(
        database_url,
        "SELECT payload->>'reason' FROM run_events WHERE run_id = %s "
        "AND name = 'cerebros.nas.run.cancelled'",
        run["id"],
    )
    assert cancelled == [("user",)]
    assert not (artifacts / run["id"]).exists()
    states = dict(
        rows(database_url, "SELECT name, state FROM saga_steps WHERE saga_id = %s", run["id"])
    )
    assert states["publish_start_event"] == "undone"


def test_cancel_finished_run_is_409(database_url: str, tmp_path: Path) -> None:
    env = service_env(database_url, CEREBROS_ENGINE_ENABLED="false")
    with api_server(env, tmp_path) as base, worker_process(env, tmp_path):
        run = httpx.post(f"{base}/runs", json=LONG_SPEC, timeout=10).json()
        assert wait_final(base, run["id"], timeout=60)["status"] == "failed"
        response = httpx.post(f"{base}/runs/{run['id']}/cancel", timeout=10)
    assert response.status_code == 409
    assert "already failed" in response.json()["detail"]


def test_worker_killed_mid_trial_is_recovered_without_retraining(
    database_url: str, tmp_path: Path
) -> None:
    env = service_env(
        database_url,
        CEREBROS_STALLED_AFTER_SECONDS="5",
        CEREBROS_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
    )
    with api_server(env, tmp_path) as base:
        run = httpx.post(f"{base}/runs", json=LONG_SPEC, timeout=10).json()
        run_id = run["id"]
        with worker_process(env, tmp_path, name="doomed") as doomed:
            # Kill it while trial 2 trains: trial 1 is finished and stored.
            wait_for(
                lambda: bool(
                    rows(
                        database_url,
                        "SELECT 1 FROM trials WHERE run_id = %s AND number = 2 AND epochs_run >= 1",
                        run_id,
                    )
                ),
                what="trial 2 training",
            )
            stop(doomed, signal.SIGKILL)
        first = rows(
            database_url,
            "SELECT started_at, finished_at FROM trials WHERE run_id = %s AND number = 1",
            run_id,
        )
        assert first and first[0][1] is not None
        assert rows(
            database_url, "SELECT job_status FROM nas_run_jobs WHERE run_id = %s", run_id
        ) == [("doing",)]
        with worker_process(env, tmp_path, name="rescuer"):
            final = wait_final(base, run_id, timeout=240)
    assert final["status"] == "succeeded", final
    trials = rows(
        database_url,
        "SELECT number, status, started_at FROM trials WHERE run_id = %s ORDER BY number",
        run_id,
    )
    assert [t[0] for t in trials] == [1, 2, 3]
    assert all(t[1] == "completed" for t in trials)
    assert trials[0][2] == first[0][0]  # trial 1 was not trained again
    duplicated = rows(
        database_url,
        "SELECT name, payload->>'trial', payload->>'epoch', count(*) "
        "FROM run_events WHERE run_id = %s "
        "AND name NOT LIKE 'cerebros.nas.step.%%' "
        "GROUP BY 1, 2, 3 HAVING count(*) > 1",
        run_id,
    )
    assert duplicated == []
    attempts = rows(
        database_url, "SELECT job_status, attempts FROM nas_run_jobs WHERE run_id = %s", run_id
    )
    assert attempts == [("succeeded", 2)]  # the killed execution and the rescue


def test_sigterm_lets_the_current_run_finish(database_url: str, tmp_path: Path) -> None:
    env = service_env(database_url, CEREBROS_ARTIFACTS_DIR=str(tmp_path / "artifacts"))
    spec = {**LONG_SPEC, "budget": {"max_trials": 2}, "parameters": {"epochs": 4, "seed": 2}}
    with api_server(env, tmp_path) as base:
        run_id = httpx.post(f"{base}/runs", json=spec, timeout=10).json()["id"]
        with worker_process(env, tmp_path) as worker:
            wait_for(
                lambda: event_count(database_url, run_id, "cerebros.nas.trial.epoch") >= 1,
                what="training",
            )
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=180) == 0
        run = httpx.get(f"{base}/runs/{run_id}", timeout=10).json()
    assert run["status"] == "succeeded"
    assert rows(database_url, "SELECT job_status FROM nas_run_jobs WHERE run_id = %s", run_id) == [
        ("succeeded",)
    ]


def test_fault_at_each_step_in_a_real_worker_leaves_the_database_consistent(
    database_url: str, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    spec = {
        "dataset_id": "iris",
        "objective": "val_accuracy",
        "search_space": {"layers": [1], "neurons": [4, 8]},
        "budget": {"max_trials": 1},
        "parameters": {"epochs": 2},
    }
    steps = ["publish_start_event", "execute_nas_run", "process_results", "publish_complete_event"]
    with api_server(service_env(database_url), tmp_path) as base:
        for step in steps:
            env = service_env(
                database_url, CEREBROS_FAULT_STEPS=step, CEREBROS_ARTIFACTS_DIR=str(artifacts)
            )
            run_id = httpx.post(f"{base}/runs", json=spec, timeout=10).json()["id"]
            with worker_process(env, tmp_path, name=f"fault-{step}"):
                final = wait_final(base, run_id, timeout=120)
            assert final["status"] == "failed", step
            error = final["error"]
            assert isinstance(error, dict) and error["step"] == step
            completed = steps[: steps.index(step)]
            undone = [u["step"] for u in error["undo"]]
            assert undone == [*reversed(completed), "ensure_run_id", "check_enabled"], step
            started = "publish_start_event" in completed
            assert event_count(database_url, run_id, "cerebros.nas.run.cancelled") == int(started)
            assert event_count(database_url, run_id, "cerebros.nas.run.failed") == 1
            assert not (artifacts / run_id).exists()
            assert rows(
                database_url, "SELECT job_status FROM nas_run_jobs WHERE run_id = %s", run_id
            ) == [("failed",)]
