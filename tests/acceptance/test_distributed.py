"""One run's trials on several worker processes that share nothing but DATABASE_URL.

Each worker and the API get an artifacts folder of their own (no shared disk): the model
download and predict must come from Postgres.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
import sklearn.datasets

from tests.acceptance.test_reliability import rows, wait_for
from tests.nas.fresh_keras import predict_in_fresh_process
from tests.support.processes import api_server, service_env, stop, wait_final, worker_process

pytestmark = pytest.mark.slow

IRIS: dict[str, Any] = {
    "dataset_id": "iris",
    "objective": "val_accuracy",
    "search_space": {"layers": [1, 2], "neurons": [8, 16, 32]},
    "budget": {"max_trials": 8},
    # Random search: trials 1-8, each trained once (asha would add promotions).
    "parameters": {"strategy": "random", "epochs": 4, "seed": 21},
}
#: Trials long enough to be caught training (digits, many epochs).
LONG: dict[str, Any] = {
    "dataset_id": "digits",
    "objective": "val_accuracy",
    "search_space": {"layers": [1, 2], "neurons": [32, 64]},
    "budget": {"max_trials": 4},
    "parameters": {"strategy": "random", "epochs": 30, "seed": 5},
}


def env_for(database_url: str, folder: Path, **extra: str) -> dict[str, str]:
    return service_env(
        database_url,
        CEREBROS_ARTIFACTS_DIR=str(folder / "artifacts"),
        CEREBROS_DATASET_CACHE_DIR=str(folder / "datasets"),
        **extra,
    )


def running_trials(database_url: str, run_id: str) -> list[tuple[Any, ...]]:
    return rows(
        database_url,
        "SELECT number, worker FROM trials WHERE run_id = %s AND status = 'running'",
        run_id,
    )


def test_two_workers_train_one_run_and_the_api_serves_its_model(
    database_url: str, tmp_path: Path
) -> None:
    api_env = env_for(database_url, tmp_path / "api")
    with api_server(api_env, tmp_path) as base:
        created = httpx.post(f"{base}/runs", json=IRIS, timeout=10)
        assert created.status_code == 202, created.text
        run_id = created.json()["id"]
        with (
            worker_process(env_for(database_url, tmp_path / "w1"), tmp_path, name="w1"),
            worker_process(env_for(database_url, tmp_path / "w2"), tmp_path, name="w2"),
        ):
            run = wait_final(base, run_id, timeout=300)
        assert run["status"] == "succeeded", run
        features, _ = sklearn.datasets.load_iris(return_X_y=True)
        download = httpx.get(f"{base}/runs/{run_id}/model", timeout=30)
        assert download.status_code == 200
        answer = httpx.post(
            f"{base}/runs/{run_id}/predict", json={"rows": features.tolist()}, timeout=60
        )
        assert answer.status_code == 200, answer.text
    trials = rows(
        database_url,
        "SELECT trial, trial_status, job_id, job_status, trainings, worker, wait, duration "
        "FROM nas_trial_jobs WHERE run_id = %s ORDER BY trial",
        run_id,
    )
    assert [t[0] for t in trials] == list(range(1, 9))
    assert all(t[1] == "completed" and t[3] == "succeeded" and t[4] == 1 for t in trials)
    assert len({t[2] for t in trials}) == 8  # a queue job per trial
    assert len({t[5] for t in trials}) == 2, trials  # both workers trained trials of the run
    # Nothing on any worker's disk: the artifacts are in Postgres.
    for folder in ("w1", "w2"):
        assert not (tmp_path / folder / "artifacts" / run_id).exists()
    stored = {
        r[0] for r in rows(database_url, "SELECT name FROM run_artifacts WHERE run_id = %s", run_id)
    }
    assert {"best_model.keras", "history.csv", "preprocessing.json", "result.json"} <= stored
    path = tmp_path / "best.keras"
    path.write_bytes(download.content)
    probabilities = predict_in_fresh_process(path, features, tmp_path)
    assert list(np.argmax(probabilities, axis=1)) == answer.json()["predictions"]


def test_a_worker_killed_mid_trial_loses_nothing(database_url: str, tmp_path: Path) -> None:
    env = env_for(database_url, tmp_path / "w", CEREBROS_STALLED_AFTER_SECONDS="3")
    with api_server(env, tmp_path) as base:
        run_id = httpx.post(f"{base}/runs", json=LONG, timeout=10).json()["id"]
        with worker_process(env, tmp_path, name="survivor"):
            with worker_process(env, tmp_path, name="doomed") as doomed:
                pid = f":{doomed.pid}"
                wait_for(
                    lambda: any(
                        str(w).endswith(pid) for _, w in running_trials(database_url, run_id)
                    ),
                    what="the doomed worker training a trial",
                )
                stop(doomed, signal.SIGKILL)
            run = wait_final(base, run_id, timeout=400)
    assert run["status"] == "succeeded", run
    trials = rows(
        database_url,
        "SELECT trial, trial_status, trainings FROM nas_trial_jobs WHERE run_id = %s "
        "ORDER BY trial",
        run_id,
    )
    assert [t[0] for t in trials] == [1, 2, 3, 4]
    assert all(t[1] == "completed" for t in trials)
    assert max(t[2] for t in trials) == 2  # the killed trial was trained again, once
    duplicated = rows(
        database_url,
        "SELECT name, payload->>'trial', count(*) FROM run_events WHERE run_id = %s "
        "AND name NOT LIKE 'cerebros.nas.step.%%' GROUP BY 1, 2 HAVING count(*) > 1",
        run_id,
    )
    assert duplicated == []
    ended = rows(
        database_url,
        "SELECT payload->>'trial' FROM run_events WHERE run_id = %s "
        "AND name = 'cerebros.nas.trial.completed' ORDER BY 1",
        run_id,
    )
    assert [int(t[0]) for t in ended] == [1, 2, 3, 4]  # each trial ended exactly once


def test_cancel_stops_every_worker_within_an_epoch(database_url: str, tmp_path: Path) -> None:
    env = env_for(database_url, tmp_path / "w")
    long_trials = {"strategy": "random", "epochs": 200, "seed": 3}
    spec = {**LONG, "budget": {"max_trials": 6}, "parameters": long_trials}
    listener = psycopg.connect(database_url, autocommit=True)
    listener.execute("LISTEN cerebros_events")
    try:
        with (
            api_server(env, tmp_path) as base,
            worker_process(env, tmp_path, name="w1"),
            worker_process(env, tmp_path, name="w2"),
        ):
            run_id = httpx.post(f"{base}/runs", json=spec, timeout=10).json()["id"]
            wait_for(lambda: len(running_trials(database_url, run_id)) == 2, what="two trials")
            time.sleep(1.0)
            _epochs(listener, run_id)  # what was sent before the cancel
            response = httpx.post(f"{base}/runs/{run_id}/cancel", timeout=10)
            assert response.status_code == 200
            final = wait_final(base, run_id, timeout=60)
            late_epochs = _epochs(listener, run_id)
    finally:
        listener.close()
    assert final["status"] == "cancelled"
    trials = rows(
        database_url,
        "SELECT trial, trial_status, job_status FROM nas_trial_jobs WHERE run_id = %s",
        run_id,
    )
    assert trials and all(t[1] == "cancelled" for t in trials), trials
    # Waiting trial jobs were cancelled; running ones were asked to abort, and did.
    assert all(t[2] in ("cancelled", "aborted") for t in trials), trials
    # Each of the two trials in training trained at most about one more epoch.
    assert all(count <= 2 for count in late_epochs.values()), late_epochs
    terminal = rows(
        database_url,
        "SELECT count(*) FROM run_events WHERE run_id = %s AND name = 'cerebros.nas.run.cancelled'",
        run_id,
    )
    assert terminal == [(1,)]


def _epochs(conn: psycopg.Connection[Any], run_id: str) -> dict[int, int]:
    """The run's live epoch notifications received since the last call, per trial."""
    counts: dict[int, int] = {}
    for note in conn.notifies(timeout=0.5):
        data = json.loads(note.payload)
        if data.get("run_id") == run_id and data.get("name") == "cerebros.nas.trial.epoch":
            trial = int(data["payload"]["trial"])
            counts[trial] = counts.get(trial, 0) + 1
    return counts


def test_two_runs_share_two_workers(database_url: str, tmp_path: Path) -> None:
    env = env_for(database_url, tmp_path / "w")
    spec = {**IRIS, "budget": {"max_trials": 6}}
    with (
        api_server(env, tmp_path) as base,
        worker_process(env, tmp_path, name="w1"),
        worker_process(env, tmp_path, name="w2"),
    ):
        first = httpx.post(f"{base}/runs", json=spec, timeout=10).json()["id"]
        second = httpx.post(f"{base}/runs", json=spec, timeout=10).json()["id"]
        assert wait_final(base, first, timeout=300)["status"] == "succeeded"
        # When the first run ended, the second had trials finished too: they interleaved.
        done = rows(
            database_url,
            "SELECT count(*) FROM trials WHERE run_id = %s AND status = 'completed'",
            second,
        )[0][0]
        assert done >= 2, done
        assert wait_final(base, second, timeout=300)["status"] == "succeeded"
