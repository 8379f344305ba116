"""Per-owner queued-run limit (CEREBROS_MAX_QUEUED_RUNS_PER_OWNER=3 in this module's app)."""

from __future__ import annotations

import uuid

import psycopg
from fastapi.testclient import TestClient

from tests.security.conftest import bearer, issue_token, run_spec, unique_owner


def runs_of(db: psycopg.Connection, owner: str) -> int:
    row = db.execute("SELECT count(*) FROM runs WHERE owner = %s", (owner,)).fetchone()
    assert row is not None
    return int(row[0])


def test_queued_limit_is_a_429_naming_the_limit(
    auth_client: TestClient, database_url: str, db: psycopg.Connection
) -> None:
    owner = unique_owner("busy")
    auth = bearer(issue_token(database_url, owner))
    first_key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = auth_client.post("/runs", json=run_spec(), headers={**auth, **first_key})
    for _ in range(2):
        assert auth_client.post("/runs", json=run_spec(), headers=auth).status_code == 202

    refused = auth_client.post("/runs", json=run_spec(), headers=auth)
    assert refused.status_code == 429, refused.text
    problem = refused.json()
    assert problem["status"] == 429
    assert "CEREBROS_MAX_QUEUED_RUNS_PER_OWNER" in problem["detail"] and "3" in problem["detail"]
    assert runs_of(db, owner) == 3

    # A replay is still answered; a cancelled run frees a slot.
    replay = auth_client.post("/runs", json=run_spec(), headers={**auth, **first_key})
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    auth_client.post(f"/runs/{first.json()['id']}/cancel", headers=auth)
    assert auth_client.post("/runs", json=run_spec(), headers=auth).status_code == 202
    assert runs_of(db, owner) == 4


def test_limit_is_per_owner(auth_client: TestClient, database_url: str) -> None:
    for _ in range(2):
        auth = bearer(issue_token(database_url, unique_owner("each")))
        for _ in range(3):
            assert auth_client.post("/runs", json=run_spec(), headers=auth).status_code == 202
