"""GET /runs/{id}/model, loaded with Keras alone, answers raw rows as POST /predict does."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
import sklearn.datasets
from fastapi.testclient import TestClient

from app.nas.artifacts import load_best_model, model_outputs
from app.nas.engine import run_search
from tests.nas.conftest import small_spec
from tests.nas.fresh_keras import predict_in_fresh_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_run(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A succeeded run whose artifacts come from a real (tiny) search, as a worker leaves it."""
    spec = small_spec(
        "digits",
        search_space={"maximum_levels": 2, "minimum_neurons_per_unit": 16},
        parameters={"epochs": 3, "batch_size": 64},
        budget={"max_trials": 1},
    )
    root = tmp_path_factory.mktemp("digits-run")
    result = run_search(spec, artifacts_dir=root)
    assert result.best is not None
    run_id = str(uuid.uuid4())
    stored = {"artifacts": result.artifacts, "best_trial": result.best.number}
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (id, status, spec, result) VALUES (%s, 'succeeded', %s, %s)",
            (run_id, spec.model_dump_json(), json.dumps(stored)),
        )
    return run_id, root


def test_downloaded_model_predicts_raw_rows_as_the_api_does(
    client: TestClient, digits_run: tuple[str, Path], tmp_path: Path
) -> None:
    run_id, root = digits_run
    rows, labels = sklearn.datasets.load_digits(return_X_y=True)
    # Raw pixel intensities 0-16, as in the README's example; few enough for the body limit.
    rows, labels = rows[:40], labels[:40]
    download = client.get(f"/runs/{run_id}/model")
    assert download.status_code == 200
    path = tmp_path / "best.keras"
    path.write_bytes(download.content)

    loaded = predict_in_fresh_process(path, rows, tmp_path)
    answer = client.post(f"/runs/{run_id}/predict", json={"rows": rows.astype(int).tolist()})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == loaded.argmax(axis=1).tolist()
    assert np.allclose(loaded, model_outputs(load_best_model(root), rows), atol=1e-5)
    assert float(np.mean(loaded.argmax(axis=1) == labels[:300])) > 0.5  # not silently wrong
