"""Every strategy end to end: submitted to a real API, trained by a real worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.nas.strategies import STRATEGIES
from tests.acceptance.test_reliability import rows
from tests.support.processes import api_server, service_env, wait_final, worker_process

pytestmark = pytest.mark.slow


def spec_for(strategy: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "dataset_id": "iris",
        "objective": "val_accuracy",
        "search_space": {"layers": [1, 2], "neurons": [4, 8, 16]},
        "budget": {"max_trials": 4},
        "parameters": {
            "strategy": strategy,
            "epochs": 4,
            "seed": 8,
            "reduction_factor": 2,
            "population_size": 2,
            "sample_size": 2,
        },
    }
    if strategy == "nsga2":
        spec["objectives"] = [
            {"name": "val_accuracy"},
            {"name": "params", "direction": "minimize"},
        ]
    return spec


def test_every_strategy_runs_through_the_api_and_a_worker(
    database_url: str, tmp_path: Path
) -> None:
    names = sorted(set(STRATEGIES) - {"successive_halving"})  # an alias of asha
    env = service_env(database_url, CEREBROS_ARTIFACTS_DIR=str(tmp_path / "artifacts"))
    with api_server(env, tmp_path) as base, worker_process(env, tmp_path):
        created = {}
        for name in names:
            response = httpx.post(f"{base}/runs", json=spec_for(name), timeout=10)
            assert response.status_code == 202, (name, response.text)
            created[name] = response.json()["id"]
        finals = {name: wait_final(base, run_id, timeout=400) for name, run_id in created.items()}
        pareto = httpx.get(f"{base}/runs/{created['nsga2']}/pareto", timeout=10)
    for name, run in finals.items():
        assert run["status"] == "succeeded", (name, run)
    # ASHA continues the best trials' saved models: promotions are trials with a parent.
    promoted = rows(
        database_url,
        "SELECT count(*) FROM trials WHERE run_id = %s AND parent IS NOT NULL",
        created["asha"],
    )
    assert promoted[0][0] >= 1
    assert pareto.status_code == 200, pareto.text
    front = pareto.json()
    assert [o["name"] for o in front["objectives"]] == ["val_accuracy", "params"]
    assert front["items"] and all(
        set(item["objectives"]) == {"val_accuracy", "params"} for item in front["items"]
    )
