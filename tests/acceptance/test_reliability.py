"""Cancellation and crash recovery with real API and worker processes."""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from app.pipeline.run_saga import STEP_NAMES
from tests.support.processes import api_server, service_env, stop, wait_final, worker_process

pytestmark = pytest.mark.slow

LONG_SPEC: dict[str, Any] = {
    "dataset_id": "digits",
    "objective": "val_accuracy",
    "search_space": {"layers": [1, 2], "neurons": [16, 32, 64]},
    "budget": {"max_trials": 3},
    # Random search: trials 1-3, each trained to 8 epochs once (asha trains 1 epoch first and
    # adds promotions): the faults below are placed at trial and epoch granularity.
    "parameters": {"strategy": "random", "epochs": 8, "seed": 11},
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


def stored_artifacts(database_url: str, run_id: str) -> list[str]:
    """Names of the run's artifacts in Postgres (every worker and API reads them there)."""
    return [
        r[0] for r in rows(database_url, "SELECT name FROM run_artifacts WHERE run_id = %s", run_id)
    ]


def training(database_url: str, run_id: str) -> bool:
    """A trial of the run is being trained (its epochs go out as live notifications only)."""
    return bool(
        rows(
            database_url,
            "SELECT 1 FROM trials WHERE run_id = %s AND status = 'running' "
            "AND started_at < clock_timestamp() - interval '1 second'",
            run_id,
        )
    )


def live_epochs(conn: psycopg.Connection[Any], run_id: str) -> int:
    """The run's live epoch notifications received on ``conn`` since the last call."""
    count = 0
    for note in conn.notifies(timeout=0.5):
        data = json.loads(note.payload)
        if data.get("run_id") == run_id and data.get("name") == "cerebros.nas.trial.epoch":
            count += 1
    return count


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
    spec = {**LONG_SPEC, "parameters": {"strategy": "random", "epochs": 200, "seed": 5}}
    listener = psycopg.connect(database_url, autocommit=True)
    listener.execute("LISTEN cerebros_events")
    with api_server(env, tmp_path) as base, worker_process(env, tmp_path):
        run = httpx.post(f"{base}/runs", json=spec, timeout=10).json()
        wait_for(lambda: training(database_url, run["id"]), what="training")
        assert live_epochs(listener, run["id"]) >= 1
        response = httpx.post(f"{base}/runs/{run['id']}/cancel", timeout=10)
        assert response.status_code == 200
        final = wait_final(base, run["id"], timeout=60)
        late = httpx.post(f"{base}/runs/{run['id']}/cancel", timeout=10)
    late_epochs = live_epochs(listener, run["id"])
    listener.close()
    assert final["status"] == "cancelled"
    assert late.status_code == 200  # idempotent on a cancelled run
    # Stopped promptly: at most a couple of epochs after the request, far from 200.
    assert late_epochs <= 3, late_epochs
    cancelled = rows(
        database_url,
        "SELECT payload->>'reason' FROM run_events WHERE run_id = %s "
        "AND name = 'cerebros.nas.run.cancelled'",
        run["id"],
    )
    assert cancelled == [("user",)]
    assert not (artifacts / run["id"]).exists()
    assert not stored_artifacts(database_url, run["id"])
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
    # 30 epochs: trial 2 must still be training a second after its claim on a quiet machine.
    spec = {**LONG_SPEC, "parameters": {**LONG_SPEC["parameters"], "epochs": 30}}
    with api_server(env, tmp_path) as base:
        run = httpx.post(f"{base}/runs", json=spec, timeout=10).json()
        run_id = run["id"]
        with worker_process(env, tmp_path, name="doomed") as doomed:
            # Kill it while trial 2 trains: trial 1 is finished and stored.
            wait_for(
                lambda: bool(
                    rows(
                        database_url,
                        "SELECT 1 FROM trials WHERE run_id = %s AND number = 2 "
                        "AND status = 'running' AND started_at < clock_timestamp() - "
                        "interval '1 second'",
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
        # Trial 2's job was taken by the dead worker: it stays `doing` until the recovery.
        assert rows(
            database_url,
            "SELECT job_status FROM nas_trial_jobs WHERE run_id = %s AND trial = 2",
            run_id,
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
    trainings = rows(
        database_url,
        "SELECT trial, job_status, trainings FROM nas_trial_jobs WHERE run_id = %s ORDER BY 1",
        run_id,
    )
    # Trial 2: the killed training and the rescue, in one job retried by the recovery.
    assert trainings == [(1, "succeeded", 1), (2, "succeeded", 2), (3, "succeeded", 1)]


def test_sigterm_lets_the_current_trial_finish(database_url: str, tmp_path: Path) -> None:
    """SIGTERM: the worker finishes the trial it trains (its job), then exits; the run goes on
    with the next worker, and the trial is not trained again."""
    env = service_env(database_url, CEREBROS_ARTIFACTS_DIR=str(tmp_path / "artifacts"))
    # 30 epochs: a trial must still be training a second after its claim (`training`) on a
    # quiet machine; at 4 epochs (~0.5 s a trial there) the poll could miss both trials.
    parameters = {"strategy": "random", "epochs": 30, "seed": 2}
    spec = {**LONG_SPEC, "budget": {"max_trials": 2}, "parameters": parameters}
    with api_server(env, tmp_path) as base:
        run_id = httpx.post(f"{base}/runs", json=spec, timeout=10).json()["id"]
        with worker_process(env, tmp_path) as worker:
            wait_for(lambda: training(database_url, run_id), what="training")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=180) == 0
        first = rows(
            database_url,
            "SELECT trial, trial_status, job_status FROM nas_trial_jobs WHERE run_id = %s "
            "AND trial_status <> 'queued' ORDER BY trial",
            run_id,
        )
        assert first and first[0][1:] == ("completed", "succeeded"), first
        with worker_process(env, tmp_path, name="next"):
            run = wait_final(base, run_id, timeout=180)
    assert run["status"] == "succeeded"
    trials = rows(
        database_url,
        "SELECT trial, job_status, trainings FROM nas_trial_jobs WHERE run_id = %s ORDER BY 1",
        run_id,
    )
    assert trials == [(1, "succeeded", 1), (2, "succeeded", 1)]


STEPS = STEP_NAMES


def job_status(database_url: str, run_id: str) -> str:
    return str(
        rows(database_url, "SELECT job_status FROM nas_run_jobs WHERE run_id = %s", run_id)[0][0]
    )


def run_level_events(database_url: str, run_id: str) -> list[str]:
    return [
        r[0]
        for r in rows(
            database_url,
            "SELECT name FROM run_events WHERE run_id = %s AND name LIKE 'cerebros.nas.run.%%' "
            "ORDER BY id",
            run_id,
        )
    ]


def test_fault_at_every_step_before_and_after_its_effect_in_a_real_worker(
    database_url: str, tmp_path: Path
) -> None:
    """Each run ends consistently: failed with every completed step undone in reverse and
    exactly one cancelled, or (a fault at the pivot) succeeded after a retry; never a
    `completed` that a later event contradicts, never a job succeeded while its run is not."""
    artifacts = tmp_path / "artifacts"
    spec = {
        "dataset_id": "iris",
        "objective": "val_accuracy",
        "search_space": {"layers": [1], "neurons": [4, 8]},
        "budget": {"max_trials": 1},
        "parameters": {"strategy": "random", "epochs": 2},
    }
    with api_server(service_env(database_url), tmp_path) as base:
        for step in STEPS:
            for point in ("before", "after"):
                env = service_env(
                    database_url,
                    CEREBROS_FAULT_STEPS=f"{step}:{point}",
                    CEREBROS_ARTIFACTS_DIR=str(artifacts),
                    CEREBROS_JOB_RETRY_WAIT_SECONDS="1",
                )
                case = f"{step}:{point}"
                run_id = httpx.post(f"{base}/runs", json=spec, timeout=10).json()["id"]
                with worker_process(env, tmp_path, name=f"fault-{step}-{point}"):
                    final = wait_final(base, run_id, timeout=120)
                    # The job's own end is written just after the run's: wait for it.
                    wait_for(
                        lambda run_id=run_id: (
                            job_status(database_url, run_id) in ("succeeded", "failed")
                        ),
                        timeout=30,
                        what=f"{case}: job end",
                    )
                job = rows(
                    database_url,
                    "SELECT job_status, attempts FROM nas_run_jobs WHERE run_id = %s",
                    run_id,
                )
                emitted = run_level_events(database_url, run_id)
                if step == "store_result":  # the pivot: retried, never undone
                    assert final["status"] == "succeeded", (case, final)
                    assert emitted == ["cerebros.nas.run.started", "cerebros.nas.run.completed"]
                    assert job == [("succeeded", 2)], case
                    assert stored_artifacts(database_url, run_id), case
                    continue
                assert final["status"] == "failed", (case, final)
                error = final["error"]
                assert isinstance(error, dict) and error["step"] == step, case
                completed = list(STEPS[: STEPS.index(step)])
                undone = [u["step"] for u in error["undo"]]
                assert undone == list(reversed(completed)), case
                started = STEPS.index(step) > STEPS.index("publish_start_event") or (
                    step == "publish_start_event" and point == "after"
                )
                expected = ["cerebros.nas.run.started", "cerebros.nas.run.cancelled"]
                assert emitted == [*(expected if started else []), "cerebros.nas.run.failed"], (
                    case,
                    emitted,
                )
                assert not (artifacts / run_id).exists(), case
                assert not stored_artifacts(database_url, run_id), case
                assert job == [("failed", 1)], case
                sql = "SELECT name, state FROM saga_steps WHERE saga_id = %s"
                states = dict(rows(database_url, sql, run_id))
                for name in ("publish_start_event", "execute_nas_run"):
                    if name in completed:
                        assert states[name] == "undone", (case, name, states[name])


def test_a_run_locked_by_another_process_is_waited_for_not_marked_succeeded(
    database_url: str, tmp_path: Path
) -> None:
    """README: an advisory lock per run keeps one run from executing twice at once; a job
    that finds the lock taken must not end `succeeded` while the run is unfinished."""
    env = service_env(database_url, CEREBROS_ARTIFACTS_DIR=str(tmp_path / "artifacts"))
    spec = {**LONG_SPEC, "dataset_id": "iris", "budget": {"max_trials": 1}}
    with api_server(env, tmp_path) as base:
        run_id = httpx.post(f"{base}/runs", json=spec, timeout=10).json()["id"]
        key = int.from_bytes(uuid.UUID(run_id).bytes[:8], "big", signed=True)
        with psycopg.connect(database_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (key,))
            with worker_process(env, tmp_path):
                wait_for(
                    lambda: job_status(database_url, run_id) == "doing",
                    what="job taken",
                )
                time.sleep(4)
                assert rows(
                    database_url,
                    "SELECT run_status, job_status FROM nas_run_jobs WHERE run_id = %s",
                    run_id,
                ) == [("queued", "doing")]
                holder.close()  # the holder goes away: the waiting job takes the run
                final = wait_final(base, run_id, timeout=120)
    assert final["status"] == "succeeded"


def test_a_draining_worker_keeps_its_job_and_a_killed_one_is_taken_over(
    database_url: str, tmp_path: Path
) -> None:
    """SIGTERM: heartbeats go on while the trial drains, so no other worker takes its job;
    SIGKILL then (a stop-then-kill shutdown): another worker trains it again and ends the run."""
    env = service_env(
        database_url,
        CEREBROS_STALLED_AFTER_SECONDS="3",
        CEREBROS_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
    )
    # One trial, long enough (on a quiet machine too) to be still training after the 10 s
    # below: the drain is a trial's now, not a whole run's.
    parameters = {"strategy": "random", "epochs": 150, "seed": 4}
    spec = {**LONG_SPEC, "budget": {"max_trials": 1}, "parameters": parameters}
    with api_server(env, tmp_path) as base:
        run_id = httpx.post(f"{base}/runs", json=spec, timeout=10).json()["id"]
        with worker_process(env, tmp_path, name="draining") as draining:
            wait_for(lambda: training(database_url, run_id), what="training")
            draining.send_signal(signal.SIGTERM)
            with worker_process(env, tmp_path, name="other"):
                time.sleep(10)  # more than three stalled timeouts
                assert draining.poll() is None, "the trial should still be draining"
                job = rows(
                    database_url,
                    "SELECT trial_status, job_status, job_attempts FROM nas_trial_jobs "
                    "WHERE run_id = %s AND trial = 1",
                    run_id,
                )
                assert job == [("running", "doing", 0)], "the draining worker's job was taken"
                stop(draining, signal.SIGKILL)
                final = wait_final(base, run_id, timeout=240)
    assert final["status"] == "succeeded", final
    retried = rows(
        database_url, "SELECT trainings FROM nas_trial_jobs WHERE run_id = %s AND trial = 1", run_id
    )
    assert retried == [(2,)]  # the killed training, then the other worker's


@pytest.mark.parametrize(
    ("faults", "error_type", "attempts"),
    [
        ("process_results:internal", "internal", 1),  # an error outside every step
        ("execute_nas_run:transient", "transient_exhausted", 2),  # retries exhausted
        ("process_results,execute_nas_run:undo", "InjectedFault", 2),  # an undo fails once
    ],
)
def test_every_way_a_run_fails_undoes_it_in_a_real_worker(
    database_url: str, tmp_path: Path, faults: str, error_type: str, attempts: int
) -> None:
    artifacts = tmp_path / "artifacts"
    env = service_env(
        database_url,
        CEREBROS_FAULT_STEPS=faults,
        CEREBROS_ARTIFACTS_DIR=str(artifacts),
        CEREBROS_JOB_MAX_ATTEMPTS="2",
        CEREBROS_JOB_RETRY_WAIT_SECONDS="1",
    )
    spec = {**LONG_SPEC, "dataset_id": "iris", "budget": {"max_trials": 1}}
    spec["parameters"] = {"strategy": "random", "epochs": 2}
    with api_server(env, tmp_path) as base, worker_process(env, tmp_path):
        run_id = httpx.post(f"{base}/runs", json=spec, timeout=10).json()["id"]
        final = wait_final(base, run_id, timeout=120)
        wait_for(
            lambda: job_status(database_url, run_id) in ("succeeded", "failed"),
            timeout=30,
            what="job end",
        )
    assert final["status"] == "failed", final
    error = final["error"]
    assert isinstance(error, dict) and error["type"] == error_type, error
    assert all(u["status"] in ("undone", "no_undo") for u in error["undo"]), error["undo"]
    assert run_level_events(database_url, run_id) == [
        "cerebros.nas.run.started",
        "cerebros.nas.run.cancelled",
        "cerebros.nas.run.failed",
    ]
    assert not (artifacts / run_id).exists()
    assert not stored_artifacts(database_url, run_id)
    job = rows(
        database_url, "SELECT job_status, attempts FROM nas_run_jobs WHERE run_id = %s", run_id
    )
    assert job == [("failed", attempts)]
    unfinished = rows(
        database_url,
        "SELECT count(*) FROM trials WHERE run_id = %s AND status IN ('queued', 'running')",
        run_id,
    )
    assert unfinished == [(0,)]
