"""The spec a run stores (and shows) has only the dataset options its dataset reads."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient


def body(dataset_id: str, **options: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"dataset_id": dataset_id, "budget": {"max_trials": 1}}
    if options:
        spec["dataset_options"] = options
    return spec


@pytest.mark.parametrize(
    ("request_body", "stored"),
    [
        (body("digits"), None),
        (body("digits", n_classes=5, noise=0.5), None),
        (body("digits", max_samples=200), {"max_samples": 200, "seed": 0}),
        (
            body("classification", n_features=4),
            {
                "n_samples": 1000,
                "n_features": 4,
                "n_classes": 2,
                "noise": 0.1,
                "seed": 0,
                "max_samples": None,
            },
        ),
        (
            body("regression", n_samples=50),
            {"n_samples": 50, "n_features": 20, "noise": 0.1, "seed": 0, "max_samples": None},
        ),
    ],
)
def test_stored_spec_has_only_the_options_the_dataset_reads(
    client: TestClient,
    db: psycopg.Connection,
    request_body: dict[str, Any],
    stored: dict[str, Any] | None,
) -> None:
    created = client.post("/runs", json=request_body)
    assert created.status_code == 202, created.text
    run_id = created.json()["id"]
    row = db.execute("SELECT spec FROM runs WHERE id = %s", (run_id,)).fetchone()
    assert row is not None
    for spec in (row[0], created.json()["spec"], client.get(f"/runs/{run_id}").json()["spec"]):
        assert spec.get("dataset_options") == stored
        assert spec["dataset_id"] == request_body["dataset_id"]
