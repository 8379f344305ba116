"""One real tiny run (real worker, real Keras) followed live, then its trials, model, predict."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.streaming.conftest import Service
from tests.streaming.helpers import IRIS_SPEC, Reader, SseResult, run_event_ids
from tests.support.processes import wait_final, worker_process

pytestmark = pytest.mark.slow


@dataclass
class FinishedRun:
    id: str
    run: dict[str, object]
    live: SseResult


@pytest.fixture(scope="module")
def finished(service: Service) -> Iterator[FinishedRun]:
    """Submit, follow the SSE stream while a real worker trains it, wait until final."""
    created = httpx.post(f"{service.base}/runs", json=IRIS_SPEC, timeout=10)
    assert created.status_code == 202, created.text
    run_id = created.json()["id"]
    reader = Reader(f"{service.base}/runs/{run_id}/events/stream", timeout=120)
    reader.start()
    assert reader.opened.wait(10)
    with worker_process(service.env, service.log_dir):
        run = wait_final(service.base, run_id, timeout=150)
    yield FinishedRun(run_id, run, reader.outcome(timeout=30))


def test_live_stream_of_a_real_run(finished: FinishedRun, database_url: str) -> None:
    assert finished.run["status"] == "succeeded", finished.run
    assert finished.live.ended
    assert finished.live.sse_ids == run_event_ids(database_url, finished.id)
    names = finished.live.names
    assert names[0] == "cerebros.nas.step.started"
    # 2 trials x 2 epochs, each reaching the stream once: as a durable event, or as a live-only
    # notification (no id, not replayed: the trial's history holds the epochs durably).
    live_names = [event["name"] for event in finished.live.live]
    assert (
        names.count("cerebros.nas.trial.epoch") + live_names.count("cerebros.nas.trial.epoch") == 4
    )
    assert "cerebros.nas.run.completed" in names


def test_progress_in_get_run(service: Service, finished: FinishedRun) -> None:
    run = httpx.get(f"{service.base}/runs/{finished.id}").json()
    progress = run["progress"]
    assert progress["trials_done"] == 2 and progress["trials_total"] == 2
    trials = httpx.get(f"{service.base}/runs/{finished.id}/trials").json()["items"]
    assert progress["best_score"] == max(t["score"] for t in trials)
    assert progress["current_step"] == run["current_step"]


def test_trials_list_sorted_by_number_and_score(service: Service, finished: FinishedRun) -> None:
    body = httpx.get(f"{service.base}/runs/{finished.id}/trials").json()
    assert body["direction"] == "max" and body["objective"] == "val_accuracy"
    items = body["items"]
    assert [t["number"] for t in items] == [1, 2]
    for trial in items:
        assert trial["status"] == "completed"
        assert trial["epochs_run"] == 2 and trial["params_count"] > 0
        assert trial["architecture"]["levels"] >= 1 and trial["architecture"]["neurons"] > 0
        assert trial["duration_s"] > 0 and 1 <= trial["best_epoch"] <= 2
    ranked = httpx.get(f"{service.base}/runs/{finished.id}/trials", params={"sort": "score"})
    scores = [t["score"] for t in ranked.json()["items"]]
    assert scores == sorted(scores, reverse=True)


def test_one_trial_with_history_and_404s(service: Service, finished: FinishedRun) -> None:
    trial = httpx.get(f"{service.base}/runs/{finished.id}/trials/1").json()
    assert [h["epoch"] for h in trial["history"]] == [1, 2]
    assert "val_accuracy" in trial["history"][0]
    assert trial["architecture_spec"]["levels"]
    missing = httpx.get(f"{service.base}/runs/{finished.id}/trials/99")
    assert missing.status_code == 404 and "trial 99" in missing.json()["detail"]
    no_run = httpx.get(f"{service.base}/runs/{uuid.uuid4()}/trials")
    assert no_run.status_code == 404


def test_download_the_best_model_and_load_it(
    service: Service, finished: FinishedRun, tmp_path: Path
) -> None:
    response = httpx.get(f"{service.base}/runs/{finished.id}/model", timeout=30)
    assert response.status_code == 200
    path = tmp_path / "model.keras"
    path.write_bytes(response.content)
    from app.nas.backend import keras

    model = keras.saving.load_model(path)
    assert model.input_shape[-1] == 4  # iris features


def test_predict_with_right_and_wrong_shapes(service: Service, finished: FinishedRun) -> None:
    url = f"{service.base}/runs/{finished.id}/predict"
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    ok = httpx.post(url, json={"rows": rows}, timeout=60)
    assert ok.status_code == 200, ok.text
    predictions = ok.json()["predictions"]
    assert len(predictions) == 2 and all(p in (0, 1, 2) for p in predictions)
    again = httpx.post(url, json={"rows": rows}, timeout=60)  # cached model, same answer
    assert again.json()["predictions"] == predictions
    bodies: list[dict[str, object]] = [
        {"rows": [[1.0, 2.0]]},
        {"rows": []},
        {"rows": [[0.0] * 4] * 1001},
    ]
    for bad in bodies:
        response = httpx.post(url, json=bad, timeout=30)
        assert response.status_code in (413, 422), response.text
        if response.status_code == 422:
            assert next(e["field"] for e in response.json()["errors"]).startswith("rows")


def test_model_of_a_run_without_one(service: Service, database_url: str) -> None:
    from tests.streaming.helpers import insert_run

    running = insert_run(database_url)
    response = httpx.get(f"{service.base}/runs/{running}/model")
    assert response.status_code == 409 and "running" in response.json()["detail"]
    predict = httpx.post(f"{service.base}/runs/{running}/predict", json={"rows": [[1.0]]})
    assert predict.status_code == 409
    done = insert_run(database_url, status="succeeded")  # succeeded, but no artifacts on disk
    assert httpx.get(f"{service.base}/runs/{done}/model").status_code == 404
