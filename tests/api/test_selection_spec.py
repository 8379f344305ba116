"""POST /runs with the spec's selection rule: a bad one is a 422 naming the field."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import count

BASE: dict[str, Any] = {"dataset_id": "iris", "budget": {"max_trials": 1}}


@pytest.mark.parametrize(
    ("selection", "field"),
    [
        ({"rule": "smallest_within_tolerance", "tolerance": -0.01}, "selection.tolerance"),
        ({"rule": "smallest_within_tolerance"}, "selection.tolerance"),
        ({"rule": "best", "tolerance": 0.01}, "selection.tolerance"),
        ({"rule": "largest"}, "selection.rule"),
    ],
)
def test_a_bad_selection_is_422_naming_the_field(
    client: TestClient, db: psycopg.Connection, selection: dict[str, Any], field: str
) -> None:
    runs_before = count(db, "SELECT count(*) FROM runs")
    response = client.post("/runs", json={**BASE, "selection": selection})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert count(db, "SELECT count(*) FROM runs") == runs_before


def test_the_rule_is_stored_with_the_run(client: TestClient) -> None:
    selection = {"rule": "smallest_within_tolerance", "tolerance": 0.02}
    created = client.post("/runs", json={**BASE, "selection": selection})
    assert created.status_code == 202, created.text
    run = client.get(f"/runs/{created.json()['id']}").json()
    assert run["spec"]["selection"] == selection
    default = client.post("/runs", json=BASE).json()
    assert client.get(f"/runs/{default['id']}").json()["spec"]["selection"] == {
        "rule": "best",
        "tolerance": None,
    }
