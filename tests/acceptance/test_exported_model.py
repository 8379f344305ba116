"""The model a real worker trained, downloaded from a real API, answers raw rows as /predict."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import sklearn.datasets

from tests.nas.fresh_keras import predict_in_fresh_process
from tests.support.processes import api_server, service_env, wait_final, worker_process

pytestmark = pytest.mark.slow


def test_downloaded_regression_model_answers_like_predict(
    database_url: str, tmp_path: Path
) -> None:
    env = service_env(database_url, CEREBROS_ARTIFACTS_DIR=str(tmp_path / "artifacts"))
    spec = {
        "dataset_id": "diabetes",
        "search_space": {"layers": [1], "neurons": [16]},
        "budget": {"max_trials": 1},
        "parameters": {"strategy": "random", "epochs": 3},  # asha would train 1 epoch
    }
    rows, targets = sklearn.datasets.load_diabetes(return_X_y=True)
    rows, targets = rows[:150], targets[:150]  # raw rows, within the body limit
    with api_server(env, tmp_path) as base:
        created = httpx.post(f"{base}/runs", json=spec, timeout=10)
        assert created.status_code == 202, created.text
        run_id = created.json()["id"]
        with worker_process(env, tmp_path):
            run = wait_final(base, run_id)
        assert run["status"] == "succeeded", run
        stored = run["spec"]
        assert isinstance(stored, dict) and stored["dataset_id"] == "diabetes"
        assert "dataset_options" not in stored  # diabetes reads none of them
        download = httpx.get(f"{base}/runs/{run_id}/model", timeout=30)
        assert download.status_code == 200
        answer = httpx.post(
            f"{base}/runs/{run_id}/predict", json={"rows": rows.tolist()}, timeout=60
        )
        assert answer.status_code == 200, answer.text
    path = tmp_path / "best.keras"
    path.write_bytes(download.content)
    loaded = predict_in_fresh_process(path, rows, tmp_path).reshape(-1)
    assert np.allclose(answer.json()["predictions"], loaded, rtol=1e-5, atol=1e-3)
    # In the target's units (25-346), not the network's standard units (about -2 to 2).
    assert 25 < float(np.mean(loaded)) < 346
    assert float(np.mean(np.abs(loaded - targets))) < float(np.std(targets)) * 1.5
