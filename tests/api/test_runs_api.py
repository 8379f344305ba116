"""POST/GET /runs through the real app and a real database."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from tests.api.conftest import count


def spec(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataset_id": "iris",
        "objective": "val_accuracy",
        "search_space": {"layers": [1, 2], "neurons": [4, 8]},
        "budget": {"max_trials": 2},
        "parameters": {"epochs": 2},
    }
    body.update(overrides)
    return body


def jobs_for(db: psycopg.Connection, run_id: str) -> int:
    return count(
        db,
        "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = 'ml' AND args->>'run_id' = %s",
        run_id,
    )


def test_post_creates_run_and_one_job(client: TestClient, db: psycopg.Connection) -> None:
    response = client.post("/runs", json=spec())
    assert response.status_code == 202, response.text
    run = response.json()
    assert response.headers["location"] == f"/runs/{run['id']}"
    assert run["status"] == "queued"
    assert run["spec"]["dataset_id"] == "iris"
    # The stored spec names the strategy: the default's (asha), as the run will use it.
    assert run["spec"]["parameters"]["strategy"] == "asha"
    assert run["created_at"] and run["updated_at"]
    assert jobs_for(db, run["id"]) == 1
    row = db.execute("SELECT job_id FROM runs WHERE id = %s", (run["id"],)).fetchone()
    assert row is not None and row[0] == run["job_id"]

    fetched = client.get(f"/runs/{run['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["id"] == run["id"]


def test_client_given_run_id_is_kept_and_duplicate_is_conflict(client: TestClient) -> None:
    run_id = str(uuid.uuid4())
    first = client.post("/runs", json=spec(run_id=run_id))
    assert first.status_code == 202 and first.json()["id"] == run_id
    again = client.post("/runs", json=spec(run_id=run_id))
    assert again.status_code == 409
    assert again.json()["errors"][0]["field"] == "run_id"


def test_idempotency_key_replays_and_conflicts(client: TestClient, db: psycopg.Connection) -> None:
    key = f"key-{uuid.uuid4()}"
    first = client.post("/runs", json=spec(), headers={"Idempotency-Key": key})
    assert first.status_code == 202
    replay = client.post("/runs", json=spec(), headers={"Idempotency-Key": key})
    assert replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"]
    different = client.post(
        "/runs", json=spec(budget={"max_trials": 3}), headers={"Idempotency-Key": key}
    )
    assert different.status_code == 409
    assert count(db, "SELECT count(*) FROM runs WHERE idempotency_key = %s", key) == 1
    assert jobs_for(db, first.json()["id"]) == 1


def test_get_unknown_run_is_404_problem(client: TestClient) -> None:
    response = client.get(f"/runs/{uuid.uuid4()}")
    assert response.status_code == 404
    body = response.json()
    assert body["status"] == 404 and "not found" in body["detail"]
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (spec(budget={"max_trials": -1}), "budget.max_trials"),
        (spec(budget={"max_trials": 10**9}), "budget.max_trials"),
        (spec(parameters={"epochs": "many"}), "parameters.epochs"),
        (spec(surprise=True), "surprise"),
        (spec(dataset_id="no-such-data"), "dataset_id"),
        (spec(dataset_id=12), "dataset_id"),
        (spec(search_space={"layers": [1, 2], "neurons": [0]}), "search_space"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(
    client: TestClient, db: psycopg.Connection, body: dict[str, Any], field: str
) -> None:
    runs_before = count(db, "SELECT count(*) FROM runs")
    jobs_before = count(db, "SELECT count(*) FROM procrastinate_jobs")
    response = client.post("/runs", json=body)
    assert response.status_code == 422, response.text
    fields = [e["field"] for e in response.json()["errors"]]
    assert any(f.startswith(field) for f in fields), fields
    assert count(db, "SELECT count(*) FROM runs") == runs_before
    assert count(db, "SELECT count(*) FROM procrastinate_jobs") == jobs_before


def test_malformed_json_is_422_naming_body(client: TestClient) -> None:
    response = client.post(
        "/runs", content=b'{"dataset_id": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


def test_oversized_body_is_413(client: TestClient, db: psycopg.Connection) -> None:
    runs_before = count(db, "SELECT count(*) FROM runs")
    body = spec(dataset_options={"junk": "x" * 20_000})
    response = client.post("/runs", json=body)
    assert response.status_code == 413
    assert response.json()["status"] == 413
    assert count(db, "SELECT count(*) FROM runs") == runs_before


def test_list_newest_first_with_status_filter_and_cursor(client: TestClient) -> None:
    created = [client.post("/runs", json=spec()).json()["id"] for _ in range(5)]
    page1 = client.get("/runs", params={"limit": 3, "status": "queued"}).json()
    assert [r["id"] for r in page1["items"]] == created[::-1][:3]
    assert all(r["status"] == "queued" for r in page1["items"])
    page2 = client.get("/runs", params={"limit": 3, "cursor": page1["next_cursor"]}).json()
    assert [r["id"] for r in page2["items"]][:2] == created[::-1][3:5]
    assert client.get("/runs", params={"status": "succeeded", "limit": 200}).status_code == 200
    assert client.get("/runs", params={"status": "bogus"}).status_code == 422
    bad_cursor = client.get("/runs", params={"cursor": "!!!"})
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"][0]["field"] == "cursor"


def test_nas_run_jobs_view_joins_runs_and_jobs(client: TestClient, db: psycopg.Connection) -> None:
    run = client.post("/runs", json=spec()).json()
    row = db.execute(
        "SELECT run_status, job_id, job_status, attempts, queue_name FROM nas_run_jobs "
        "WHERE run_id = %s",
        (run["id"],),
    ).fetchone()
    assert row == ("queued", run["job_id"], "todo", 0, "ml")


def test_job_insert_failure_leaves_no_run(client: TestClient, db: psycopg.Connection) -> None:
    """Run row and job are one transaction: a failing job insert takes the run with it."""
    run_id = str(uuid.uuid4())
    db.execute(
        f"""
        CREATE FUNCTION reject_job_{run_id.replace("-", "_")}() RETURNS trigger AS $$
        BEGIN
            IF NEW.args->>'run_id' = '{run_id}' THEN RAISE EXCEPTION 'job rejected'; END IF;
            RETURN NEW;
        END $$ LANGUAGE plpgsql;
        CREATE TRIGGER reject_job BEFORE INSERT ON procrastinate_jobs
        FOR EACH ROW EXECUTE FUNCTION reject_job_{run_id.replace("-", "_")}();
        """
    )
    try:
        # A client that reports the 500 instead of re-raising the server's exception.
        settings = client.app.state.cerebros.settings  # type: ignore[attr-defined]
        with TestClient(create_app(settings), raise_server_exceptions=False) as raw_client:
            response = raw_client.post("/runs", json=spec(run_id=run_id))
        assert response.status_code == 500
        assert response.json()["status"] == 500
    finally:
        db.execute("DROP TRIGGER reject_job ON procrastinate_jobs")
    assert count(db, "SELECT count(*) FROM runs WHERE id = %s", run_id) == 0
    assert jobs_for(db, run_id) == 0


def test_events_are_listed_after_a_cursor(client: TestClient, db: psycopg.Connection) -> None:
    run = client.post("/runs", json=spec()).json()
    for n in range(3):
        db.execute(
            "INSERT INTO run_events (run_id, name, payload) VALUES (%s, %s, %s::jsonb)",
            (run["id"], "cerebros.nas.trial.epoch", f'{{"epoch": {n}}}'),
        )
    page = client.get(f"/runs/{run['id']}/events").json()
    assert [e["payload"]["epoch"] for e in page["items"]] == [0, 1, 2]
    ids = [e["id"] for e in page["items"]]
    assert ids == sorted(ids)
    rest = client.get(f"/runs/{run['id']}/events", params={"after": ids[0]}).json()
    assert [e["id"] for e in rest["items"]] == ids[1:]
    assert rest["next_after"] == ids[-1]
    assert client.get(f"/runs/{uuid.uuid4()}/events").status_code == 404


def test_warm_start_must_name_an_own_run_on_the_same_dataset(client: TestClient) -> None:
    body = {
        "dataset_id": "iris",
        "objective": "val_accuracy",
        "parameters": {"warm_start_run_id": str(uuid.uuid4())},
    }
    response = client.post("/runs", json=body)
    assert response.status_code == 422, response.text
    assert "warm_start_run_id" in response.text
    other = client.post("/runs", json=spec())  # a run of the caller's, on iris
    assert other.status_code == 202
    wine = {**spec(dataset_id="wine"), "parameters": {"warm_start_run_id": other.json()["id"]}}
    response = client.post("/runs", json=wine)
    assert response.status_code == 422, response.text
