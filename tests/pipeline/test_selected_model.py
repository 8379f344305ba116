"""A run under the selection rule smallest_within_tolerance, through the pipeline and the API:
its result, GET /runs/{id}/model and /predict name and serve the chosen trial."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.api.main import create_app
from app.config import Settings
from app.nas.artifact_names import ARCHITECTURE, CANDIDATES
from app.pipeline.job import execute_run_job
from app.runs import artifacts, trials
from tests.pipeline.conftest import (
    TINY_SPEC,
    ResourcesFactory,
    insert_run,
    load_run,
    stored_artifacts,
)

SPEC: dict[str, Any] = {
    **TINY_SPEC,
    "search_space": {"layers": [1, 2], "neurons": [4, 8, 16, 32]},
    "budget": {"max_trials": 3},
    "parameters": {"strategy": "random", "epochs": 1, "seed": 4},
    # 1.0 of accuracy admits every trial: the choice is the smallest network, whatever the
    # (noisy) scores of one-epoch trials are.
    "selection": {"rule": "smallest_within_tolerance", "tolerance": 1.0},
}
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def keras_params(content: bytes, folder: Path) -> int:
    """count_params of a downloaded .keras file (its preprocessing layers hold no weights)."""
    from app.nas.backend import keras

    assert zipfile.is_zipfile(io.BytesIO(content))
    path = folder / "downloaded.keras"
    path.write_bytes(content)
    return int(keras.saving.load_model(path).count_params())


async def test_the_result_and_the_served_model_are_the_chosen_trial(
    make_resources: ResourcesFactory, database_url: str, tmp_path: Path
) -> None:
    resources = make_resources()
    run_id = await insert_run(resources.sessions, SPEC)
    await execute_run_job(resources, run_id)
    run = await load_run(resources.sessions, run_id)
    assert run.status == "succeeded", run.error
    async with resources.sessions() as session:
        rows = await trials.list_trials(session, run_id)
        doc = await artifacts.get_artifact(session, run_id, ARCHITECTURE)
    done = [r for r in rows if r.status == "completed"]
    assert len(done) == 3 and len({r.params_count for r in done}) > 1
    smallest = min(done, key=lambda r: (r.params_count or 0, -(r.score or 0.0), r.number))
    top = max(done, key=lambda r: (r.score or 0.0, -r.number))
    # Seed 4: trial 1 scores best by far, trial 2 is the smallest (trial 3 in between).
    assert smallest.number != top.number
    assert doc is not None and json.loads(doc.content)["trial_number"] == smallest.number
    assert not any(
        n.startswith(CANDIDATES + "/") for n in await stored_artifacts(resources.sessions, run_id)
    )

    settings = Settings(
        database_url=database_url,
        auth_enabled=False,
        artifacts_dir=tmp_path / "api-artifacts",
        model_cache_dir=tmp_path / "api-cache",
    )
    with TestClient(create_app(settings)) as client:
        result = client.get(f"/runs/{run_id}").json()["result"]
        assert result["best_trial"] == smallest.number
        assert result["best_score"] == smallest.score
        assert result["selection"] == {
            "rule": "smallest_within_tolerance",
            "tolerance": 1.0,
            "trial": smallest.number,
            "score": smallest.score,
            "params": smallest.params_count,
            "top_trial": top.number,
            "top_score": top.score,
        }
        download = client.get(f"/runs/{run_id}/model")
        assert download.status_code == 200, download.text
        assert keras_params(download.content, tmp_path) == smallest.params_count
        answer = client.post(f"/runs/{run_id}/predict", json={"rows": ROWS})
        assert answer.status_code == 200, answer.text
        assert answer.json()["trial"] == smallest.number
