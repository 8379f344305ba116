"""Owner isolation: another owner's run is a 404 everywhere; admins see every run."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.security.conftest import bearer, issue_token, run_spec, unique_owner


@pytest.fixture(scope="module")
def owners(database_url: str) -> dict[str, str]:
    return {
        "alice": issue_token(database_url, unique_owner("alice")),
        "bob": issue_token(database_url, unique_owner("bob")),
        "admin": issue_token(database_url, unique_owner("admin"), admin=True),
    }


@pytest.fixture(scope="module")
def alice_run(auth_client: TestClient, owners: dict[str, str]) -> dict[str, object]:
    response = auth_client.post("/runs", json=run_spec(), headers=bearer(owners["alice"]))
    assert response.status_code == 202, response.text
    run: dict[str, object] = response.json()
    return run


def run_routes(run_id: object) -> list[tuple[str, str]]:
    return [
        ("GET", f"/runs/{run_id}"),
        ("GET", f"/runs/{run_id}/events"),
        ("GET", f"/runs/{run_id}/events/stream"),
        ("GET", f"/runs/{run_id}/trials"),
        ("GET", f"/runs/{run_id}/trials/0"),
        ("GET", f"/runs/{run_id}/model"),
        ("POST", f"/runs/{run_id}/predict"),
        ("POST", f"/runs/{run_id}/cancel"),
    ]


def test_post_sets_the_token_owner(alice_run: dict[str, object]) -> None:
    assert str(alice_run["owner"]).startswith("alice-")


@pytest.mark.parametrize("index", range(8))
def test_another_owner_gets_404_on_every_run_route(
    auth_client: TestClient,
    owners: dict[str, str],
    alice_run: dict[str, object],
    db: psycopg.Connection,
    index: int,
) -> None:
    method, path = run_routes(alice_run["id"])[index]
    body = {"rows": [[1.0, 2.0, 3.0, 4.0]]} if path.endswith("/predict") else None
    response = auth_client.request(method, path, json=body, headers=bearer(owners["bob"]))
    assert response.status_code == 404, (path, response.text)
    assert response.json()["status"] == 404
    # ... and the run is untouched (bob's cancel did nothing).
    status = db.execute("SELECT status FROM runs WHERE id = %s", (alice_run["id"],)).fetchone()
    assert status == ("queued",)


def test_lists_show_only_ones_own_runs(
    auth_client: TestClient, owners: dict[str, str], alice_run: dict[str, object]
) -> None:
    bob_run = auth_client.post("/runs", json=run_spec(), headers=bearer(owners["bob"])).json()
    bob_ids = {
        r["id"] for r in auth_client.get("/runs", headers=bearer(owners["bob"])).json()["items"]
    }
    assert bob_run["id"] in bob_ids and alice_run["id"] not in bob_ids
    page = auth_client.get("/runs", params={"limit": 200}, headers=bearer(owners["admin"]))
    admin_ids = {r["id"] for r in page.json()["items"]}
    assert {alice_run["id"], bob_run["id"]} <= admin_ids


def test_admin_reads_and_cancels_any_run(
    auth_client: TestClient, owners: dict[str, str], database_url: str
) -> None:
    carol = issue_token(database_url, unique_owner("carol"))
    run = auth_client.post("/runs", json=run_spec(), headers=bearer(carol)).json()
    admin = bearer(owners["admin"])
    assert auth_client.get(f"/runs/{run['id']}", headers=admin).json()["owner"] == run["owner"]
    assert auth_client.get(f"/runs/{run['id']}/events", headers=admin).status_code == 200
    cancelled = auth_client.post(f"/runs/{run['id']}/cancel", headers=admin)
    assert cancelled.json()["status"] == "cancelled"


def test_same_idempotency_key_of_two_owners_are_two_runs(
    auth_client: TestClient, owners: dict[str, str]
) -> None:
    key = {"Idempotency-Key": f"shared-{uuid.uuid4()}"}
    a = auth_client.post("/runs", json=run_spec(), headers={**key, **bearer(owners["alice"])})
    b = auth_client.post("/runs", json=run_spec(), headers={**key, **bearer(owners["bob"])})
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]
