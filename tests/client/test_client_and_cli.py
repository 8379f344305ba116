"""The Python client and the `cerebros` client commands against a real API and worker."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.client import CerebrosClient, ClientError
from tests.streaming.conftest import Service
from tests.streaming.helpers import IRIS_SPEC, run_event_ids

pytestmark = pytest.mark.slow


def cli(service: Service, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**service.env, "CEREBROS_URL": service.base, "COLUMNS": "160"}
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
