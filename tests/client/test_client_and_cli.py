"""The Python client and the `cerebros` client commands against a real API and worker."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from app.client import CerebrosClient, ClientError
from tests.streaming.conftest import Service
from tests.streaming.helpers import IRIS_SPEC, run_event_ids
from tests.support.processes import wait_final

pytestmark = pytest.mark.slow


def cli(
    service: Service,
    *args: str,
    timeout: float = 180,
    columns: int = 160,
    url: str | None = "",
) -> subprocess.CompletedProcess[str]:
    """`cerebros ARGS` against the service (`url=None`: no API URL, e.g. for --local)."""
    env = {**service.env, "COLUMNS": str(columns)}
    if url is not None:
        env["CEREBROS_URL"] = url or service.base
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def watched(service: Service, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """`cerebros submit SPEC --watch` through the real entry point: (run id, output)."""
    spec = tmp_path_factory.mktemp("spec") / "spec.json"
    spec.write_text(json.dumps(IRIS_SPEC))
    done = cli(service, "submit", str(spec), "--watch")
    assert done.returncode == 0, done.stdout + done.stderr
    match = re.search(r"run ([0-9a-f-]{36}) queued", done.stdout)
    assert match, done.stdout
    return match.group(1), done.stdout


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[CerebrosClient]:
    with CerebrosClient(service.base) as c:
        yield c


def test_cli_submit_watch_shows_progress_and_top_trials(watched: tuple[str, str]) -> None:
    run_id, output = watched
    assert f"run {run_id}: succeeded" in output
    assert "trials (best" in output and "2/2" in output
    assert "Top trials (val_accuracy, max)" in output


def test_client_reads_run_progress_and_trials(
    client: CerebrosClient, watched: tuple[str, str]
) -> None:
    run = client.get(watched[0])
    assert run.status == "succeeded"
    assert run.progress is not None and run.progress.trials_done == 2
    ranked = client.trials(run.id, sort="score").items
    assert len(ranked) == 2 and ranked[0].score == run.progress.best_score
    assert [h["epoch"] for h in client.trial(run.id, 1).history] == [1, 2]
    assert any(r.id == run.id for r in client.list(status="succeeded", limit=200).items)


def test_client_events_of_a_finished_run_end(
    client: CerebrosClient, watched: tuple[str, str], database_url: str
) -> None:
    ids = [e.id for e in client.events(watched[0])]
    assert ids == run_event_ids(database_url, watched[0])
    trial_events = list(client.events(watched[0], pattern="cerebros.nas.trial.*", after=ids[2]))
    assert trial_events and all(e.name.startswith("cerebros.nas.trial.") for e in trial_events)
    assert all(e.id > ids[2] for e in trial_events)


def test_client_model_and_predict(
    client: CerebrosClient, watched: tuple[str, str], tmp_path: Path
) -> None:
    path = client.download_model(watched[0], tmp_path / "best.keras")
    assert path.stat().st_size > 0 and path.read_bytes()[:2] == b"PK"  # a .keras zip
    assert len(client.predict(watched[0], [[5.1, 3.5, 1.4, 0.2]])) == 1
    with pytest.raises(ClientError) as err:
        client.predict(watched[0], [[1.0, 2.0, 3.0]])
    assert err.value.status == 422 and err.value.fields == ["rows"]


def test_client_errors_carry_the_problem(client: CerebrosClient) -> None:
    with pytest.raises(ClientError) as err:
        client.get(uuid.uuid4())
    assert err.value.status == 404 and err.value.problem["title"] == "Not found"
    with pytest.raises(ClientError) as err:
        client.submit({"dataset_id": "nope"})
    assert err.value.status == 422 and "dataset_id" in err.value.fields


def test_cli_runs_and_events(service: Service, watched: tuple[str, str]) -> None:
    run_id = watched[0]
    listed = cli(service, "runs", "--status", "succeeded", "--limit", "200")
    assert listed.returncode == 0 and run_id[:8] in listed.stdout
    printed = cli(service, "events", run_id, "--pattern", "cerebros.nas.run.**")
    names = [json.loads(line)["name"] for line in printed.stdout.splitlines()]
    assert names == ["cerebros.nas.run.started", "cerebros.nas.run.completed"]
    followed = cli(service, "events", run_id, "--follow")
    assert followed.returncode == 0 and len(followed.stdout.splitlines()) > 10
    bad = cli(service, "events", run_id, "--pattern", "a..b")
    assert bad.returncode == 2


# --- The first hour: ids, errors, Ctrl+C, local runs ---------------------------------------

# Minutes of training: still running when the tests below are done with it (they cancel it).
SLOW_SPEC = {
    "dataset_id": "digits",
    "search_space": {"layers": [1, 2, 3], "neurons": [16, 32, 64, 128]},
    "budget": {"max_trials": 20},
    "parameters": {"strategy": "random", "epochs": 50},  # 50-epoch trials (asha: 1 at first)
}


def test_cli_runs_shows_whole_ids_at_120_columns(
    service: Service, watched: tuple[str, str]
) -> None:
    listed = cli(service, "runs", "--limit", "200", columns=120)
    assert listed.returncode == 0, listed.stderr
    assert watched[0] in listed.stdout  # all 36 characters, on one line


def test_cli_takes_a_unique_prefix_wherever_it_takes_an_id(
    service: Service, watched: tuple[str, str], client: CerebrosClient
) -> None:
    run_id = watched[0]
    prefix = run_id[:8]
    printed = cli(service, "events", prefix, "--pattern", "cerebros.nas.run.*")
    assert printed.returncode == 0, printed.stderr
    assert {json.loads(line)["run_id"] for line in printed.stdout.splitlines()} == {run_id}
    ranked = cli(service, "trials", prefix)
    assert ranked.returncode == 0 and "Top trials (val_accuracy, max)" in ranked.stdout

    # Two runs whose ids share their first 13 characters; queued, then cancelled by prefix.
    shared = f"{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:4]}"
    twins = [f"{shared}-4000-8000-00000000000{n}" for n in (1, 2)]
    for twin in twins:
        client.submit({**SLOW_SPEC, "run_id": twin})
    ambiguous = cli(service, "cancel", shared)
    assert ambiguous.returncode == 2
    assert ambiguous.stderr.splitlines() == [
        f"error: '{shared}' starts more than one run id ({twins[1]}, {twins[0]}); "
        "give more characters"
    ]
    for twin in twins:
        cancelled = cli(service, "cancel", twin)  # a whole id works too
        assert cancelled.returncode == 0, cancelled.stderr
    unknown = cli(service, "events", "ffff0000ffff")  # 1 chance in 2**48 that one does
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines() == ["error: no run id starts with 'ffff0000ffff'"]


def test_cli_http_errors_are_the_problem_in_two_lines(service: Service, tmp_path: Path) -> None:
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"dataset_id": "nope", "budget": {"max_trials": 0}}))
    done = cli(service, "submit", str(spec))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("error: 422 invalid fields: ")
    assert "dataset_id: " in lines[1] and "budget.max_trials: " in lines[1]
    missing = cli(service, "events", str(uuid.uuid4()))
    assert missing.returncode == 1
    assert (
        missing.stderr.splitlines() == [f"error: 404 run {missing.args[-1]} not found"]
        or "404" in missing.stderr.splitlines()[0]
    )


def test_ctrl_c_while_watching_says_the_run_goes_on_and_how_to_cancel_it(
    service: Service, tmp_path: Path
) -> None:
    spec = tmp_path / "slow.json"
    spec.write_text(json.dumps(SLOW_SPEC))
    env = {**service.env, "CEREBROS_URL": service.base, "COLUMNS": "160"}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "submit", str(spec), "--watch"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert watcher.stdout is not None
    first = watcher.stdout.readline()
    match = re.search(r"run ([0-9a-f-]{36}) queued", first)
    assert match, first
    run_id = match.group(1)
    time.sleep(3)  # watching: the run is queued or training
    watcher.send_signal(signal.SIGINT)
    output = watcher.stdout.read()
    assert watcher.wait(timeout=30) == 130, output
    assert f"stopped watching; run {run_id} goes on in the service." in output
    assert f"cancel it: cerebros cancel {run_id}" in output
    assert "Traceback" not in output

    assert CerebrosClient(service.base).get(run_id).status in ("queued", "running")
    cancelled = cli(service, "cancel", run_id)  # the command it printed
    assert cancelled.returncode == 0, cancelled.stderr
    final = wait_final(service.base, run_id, timeout=120)
    assert final["status"] == "cancelled"


def test_run_local_executes_here_and_is_recorded_like_any_run(
    service: Service, database_url: str, tmp_path: Path
) -> None:
    spec = tmp_path / "local.json"
    spec.write_text(json.dumps(IRIS_SPEC))
    done = cli(service, "run", str(spec), "--local", url=None)
    assert done.returncode == 0, done.stdout + done.stderr
    match = re.search(r"run ([0-9a-f-]{36}) running here \(--local\)", done.stdout)
    assert match, done.stdout
    run_id = match.group(1)
    assert f"run {run_id}: succeeded" in done.stdout
    assert "2/2" in done.stdout and "Top trials (val_accuracy, max)" in done.stdout

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT status, job_id FROM runs WHERE id = %s", (run_id,)).fetchone()
    assert row == ("succeeded", None)  # no queue job was ever made
    listed = cli(service, "runs", "--limit", "200", columns=120)
    assert run_id in listed.stdout
    printed = cli(service, "events", run_id[:13])
    names = [json.loads(line)["name"] for line in printed.stdout.splitlines()]
    started, completed = "cerebros.nas.run.started", "cerebros.nas.run.completed"
    assert started in names and completed in names
    assert names.index(started) < names.index(completed)
    assert names.count("cerebros.nas.trial.completed") == 2
    assert [e.id for e in CerebrosClient(service.base).events(run_id)] == run_event_ids(
        database_url, run_id
    )
