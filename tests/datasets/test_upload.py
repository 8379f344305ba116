"""POST/GET/DELETE /datasets on the real app and Postgres: schemas, bad input, owners."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.datasets.conftest import LIMIT, stored, upload
from tests.datasets.data import csv_bytes, mixed_table, npz_bytes, parquet_bytes

PROBLEM = "application/problem+json"


def npz_without_y() -> bytes:
    sink = io.BytesIO()
    np.savez(sink, x=np.ones((4, 2)))
    return sink.getvalue()


def assert_problem(response: httpx.Response, status: int, field: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, object] = response.json()
    assert body["status"] == status
    fields = [e["field"] for e in body["errors"]]  # type: ignore[attr-defined]
    assert field in fields, body
    return body


def test_csv_schema_has_types_missing_values_and_classes(
    client: TestClient, owners: dict[str, dict[str, str]]
) -> None:
    content = csv_bytes(mixed_table())
    response = upload(client, owners["alice"], content, "mixed.csv", target="label")
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/datasets/{body['id']}"
    assert body["id"].startswith("ds_") and body["format"] == "csv"
    assert body["name"] == "mixed.csv" and body["size_bytes"] == len(content)
    assert (body["rows"], body["features"], body["task"]) == (240, 3, "classification")
    columns = {c["name"]: c for c in body["columns"]}
    assert columns["size"]["type"] == "numeric" and columns["size"]["missing"] == 0
    assert columns["color"]["type"] == "categorical"
    assert columns["color"]["encoding"] == "one_hot"
    assert sorted(columns["color"]["categories"]) == ["blue", "green", "red"]
    assert columns["weight"]["missing"] == 19  # every 13th of 240
    assert "mean" in columns["weight"]["missing_values"]
    classes = body["target_summary"]["classes"]
    assert [c["label"] for c in classes] == ["no", "yes"]
    assert sum(c["count"] for c in classes) == 240
    assert len(body["sample_rows"]) == 5 and body["sample_rows"][0]["weight"] is None

    shown = client.get(f"/datasets/{body['id']}", headers=owners["alice"]).json()
    assert shown == body
    listed = client.get("/datasets", headers=owners["alice"]).json()["items"]
    assert body["id"] in [d["id"] for d in listed]


def test_parquet_and_npz_schemas(client: TestClient, owners: dict[str, dict[str, str]]) -> None:
    table = mixed_table(seed=1)
    parquet = upload(
        client,
        owners["alice"],
        parquet_bytes(table),
        "mixed.parquet",
        target="weight",
        task="regression",
    )
    assert parquet.status_code == 201, parquet.text
    body = parquet.json()
    assert body["task"] == "regression" and body["target_summary"]["missing"] == 19
    assert body["target_summary"]["range"]["min"] < body["target_summary"]["range"]["max"]
    assert {c["name"]: c["type"] for c in body["columns"]} == {
        "size": "numeric",
        "color": "categorical",
        "label": "categorical",
    }
    npz = upload(client, owners["alice"], npz_bytes(), "arrays.npz", name="my arrays")
    assert npz.status_code == 201, npz.text
    body = npz.json()
    assert (body["name"], body["target"], body["features"]) == ("my arrays", "y", 4)
    assert body["columns"][1]["missing"] == 1
    assert [c["label"] for c in body["target_summary"]["classes"]] == [0, 1]


def test_column_types_override_the_inferred_ones(
    client: TestClient, owners: dict[str, dict[str, str]]
) -> None:
    content = b"zip,amount,ok\n1000,1.5,a\n2000,2.5,b\n1000,3.5,a\n2000,0.5,b\n"
    response = upload(
        client, owners["alice"], content, target="ok", column_types='{"zip": "categorical"}'
    )
    assert response.status_code == 201, response.text
    zip_column = response.json()["columns"][0]
    assert (zip_column["type"], zip_column["inferred_type"]) == ("categorical", "numeric")
    assert zip_column["categories"] == ["1000", "2000"]


BAD_INPUT: list[tuple[str, bytes, str, dict[str, str], int, str]] = [
    ("unknown target", b"a,b\n1,2\n3,4\n", "t.csv", {"target": "c"}, 422, "target"),
    ("no target", b"a,b\n1,2\n3,4\n", "t.csv", {}, 422, "target"),
    ("empty file", b"", "t.csv", {"target": "b"}, 422, "file"),
    ("header only", b"a,b\n", "t.csv", {"target": "b"}, 422, "file"),
    ("one class only", b"a,b\n1,x\n2,x\n3,x\n", "t.csv", {"target": "b"}, 422, "target"),
    (
        "non-numeric regression target",
        b"a,b\n1,x\n2,y\n",
        "t.csv",
        {"target": "b", "task": "regression"},
        422,
        "target",
    ),
    ("ragged row, long", b"a,b\n1,2\n3,4,5\n", "t.csv", {"target": "b"}, 422, "file"),
    ("ragged row, short", b"a,b,c\n1,2,3\n3,4\n", "t.csv", {"target": "b"}, 422, "file"),
    ("not UTF-8", "a,b\n1,é\n2,x\n".encode("latin-1"), "t.csv", {"target": "b"}, 422, "file"),
    ("bad parquet", b"PAR1 this is not parquet", "t.parquet", {"target": "b"}, 422, "file"),
    ("npz not a zip", b"PK\x03\x04 not a zip", "t.npz", {}, 422, "file"),
    ("npz without y", npz_without_y(), "t.npz", {}, 422, "file"),
    ("unknown format", b"a,b\n1,2\n", "t.xlsx", {"target": "b"}, 422, "file"),
    ("only the target", b"b\n1\n2\n", "t.csv", {"target": "b"}, 422, "file"),
    (
        "column_types not JSON",
        b"a,b\n1,x\n2,y\n",
        "t.csv",
        {"target": "b", "column_types": "{"},
        422,
        "column_types",
    ),
    (
        "column_types unknown column",
        b"a,b\n1,x\n2,y\n",
        "t.csv",
        {"target": "b", "column_types": '{"z": "numeric"}'},
        422,
        "column_types",
    ),
    (
        "text declared numeric",
        b"a,c,b\nq,1,x\nr,2,y\n",
        "t.csv",
        {"target": "b", "column_types": '{"a": "numeric"}'},
        422,
        "column_types",
    ),
    ("bad task", b"a,b\n1,x\n2,y\n", "t.csv", {"target": "b", "task": "ranking"}, 422, "task"),
    ("over the limit", b"a,b\n" + b"1,2\n" * (LIMIT // 4 + 10), "t.csv", {}, 413, "file"),
    (
        "way over the limit",
        b"a,b\n" + b"1,2\n" * (3 * LIMIT // 4),
        "t.csv",
        {"target": "b"},
        413,
        "file",
    ),
]


@pytest.mark.parametrize(
    ("content", "filename", "fields", "status", "field"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_is_a_problem_naming_the_field_and_stores_nothing(
    client: TestClient,
    owners: dict[str, dict[str, str]],
    db: psycopg.Connection,
    content: bytes,
    filename: str,
    fields: dict[str, str],
    status: int,
    field: str,
) -> None:
    before = stored(db)
    response = upload(client, owners["alice"], content, filename, **fields)
    body = assert_problem(response, status, field)
    assert str(body["detail"])
    assert stored(db) == before


def test_a_body_streamed_past_the_limit_is_cut_off(
    client: TestClient, owners: dict[str, dict[str, str]], db: psycopg.Connection
) -> None:
    """No Content-Length (chunked): the limit is checked on the bytes as they come."""
    before = stored(db)
    boundary = "cerebros-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
    ).encode()

    def body() -> Iterator[bytes]:
        yield head + b"a,b\n"
        for _ in range(40):
            yield b"1,2\n" * 1024  # 4 KiB each, 160 KiB in all
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/datasets",
        content=body(),
        headers={**owners["alice"], "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_problem(response, 413, "file")
    assert stored(db) == before


def test_not_multipart_is_a_problem(client: TestClient, owners: dict[str, dict[str, str]]) -> None:
    response = client.post("/datasets", json={"file": "a,b"}, headers=owners["alice"])
    assert_problem(response, 422, "file")


def test_owners_see_their_own_and_admins_all(
    client: TestClient, owners: dict[str, dict[str, str]]
) -> None:
    alices = upload(client, owners["alice"], csv_bytes(mixed_table()), target="label").json()
    path = f"/datasets/{alices['id']}"
    assert client.get(path, headers=owners["bob"]).status_code == 404
    assert client.delete(path, headers=owners["bob"]).status_code == 404
    bobs_list = client.get("/datasets", headers=owners["bob"]).json()["items"]
    assert alices["id"] not in [d["id"] for d in bobs_list]
    assert client.get(path, headers=owners["admin"]).status_code == 200
    admins_list = client.get("/datasets?limit=200", headers=owners["admin"]).json()["items"]
    assert alices["id"] in [d["id"] for d in admins_list]
    assert client.get("/datasets/ds_nonexistent", headers=owners["alice"]).status_code == 404
    assert client.get(path).status_code == 401


def run_body(dataset_id: str, **extra: object) -> dict[str, object]:
    return {
        "dataset_id": dataset_id,
        "search_space": {"layers": [1], "neurons": [4]},
        "budget": {"max_trials": 1},
        "parameters": {"epochs": 1},
        **extra,
    }


def test_a_run_may_use_its_owners_dataset_only(
    client: TestClient, owners: dict[str, dict[str, str]], db: psycopg.Connection
) -> None:
    alices = upload(client, owners["alice"], csv_bytes(mixed_table()), target="label").json()
    runs_before = db.execute("SELECT count(*) FROM runs").fetchone()
    for headers, body in (
        (owners["bob"], run_body(alices["id"])),
        (owners["alice"], run_body("ds_" + "0" * 32)),
    ):
        response = client.post("/runs", json=body, headers=headers)
        assert_problem(response, 422, "dataset_id")
    mismatch = client.post(
        "/runs", json=run_body(alices["id"], objective="val_mae"), headers=owners["alice"]
    )
    assert_problem(mismatch, 422, "objective")
    assert db.execute("SELECT count(*) FROM runs").fetchone() == runs_before
    malformed = client.post("/runs", json=run_body("ds_nothex"), headers=owners["alice"])
    assert_problem(malformed, 422, "dataset_id")


def test_a_dataset_in_use_cannot_be_deleted(
    client: TestClient, owners: dict[str, dict[str, str]], db: psycopg.Connection
) -> None:
    """No worker here: the run stays queued until it is cancelled."""
    dataset = upload(client, owners["alice"], csv_bytes(mixed_table()), target="label").json()
    run = client.post("/runs", json=run_body(dataset["id"]), headers=owners["alice"])
    assert run.status_code == 202, run.text
    assert run.json()["spec"]["objective"] == "val_accuracy"  # from the dataset's task
    path = f"/datasets/{dataset['id']}"
    body = assert_problem(client.delete(path, headers=owners["alice"]), 409, "dataset_id")
    assert run.json()["id"] in str(body["detail"])
    assert client.get(path, headers=owners["alice"]).status_code == 200
    db.execute("UPDATE runs SET status = 'running' WHERE id = %s", (run.json()["id"],))
    assert client.delete(path, headers=owners["alice"]).status_code == 409
    db.execute("UPDATE runs SET status = 'succeeded' WHERE id = %s", (run.json()["id"],))
    deleted = client.delete(path, headers=owners["alice"])
    assert deleted.status_code == 204
    assert client.get(path, headers=owners["alice"]).status_code == 404
    chunks = db.execute(
        "SELECT count(*) FROM dataset_chunks WHERE dataset_id = %s", (dataset["id"],)
    ).fetchone()
    assert chunks == (0,)
    again = client.post("/runs", json=run_body(dataset["id"]), headers=owners["alice"])
    assert_problem(again, 422, "dataset_id")


def test_predict_takes_strings_and_objects_but_still_names_bad_cells(
    client: TestClient, owners: dict[str, dict[str, str]]
) -> None:
    unknown = "/runs/00000000-0000-0000-0000-000000000000/predict"
    for rows in ([["red", 1.5, None]], [{"color": "red"}]):
        answer = client.post(unknown, json={"rows": rows}, headers=owners["alice"])
        assert answer.status_code == 404, answer.text
    for bad, field in (([[1, True]], "rows.0.1"), ([{"a": [1]}], "rows.0.a")):
        answer = client.post(unknown, json={"rows": bad}, headers=owners["alice"])
        assert_problem(answer, 422, field)


def test_openapi_documents_the_upload(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/datasets"]["post"]["requestBody"]["content"]
    assert "file" in body["multipart/form-data"]["schema"]["properties"]
    assert json.dumps(spec)  # serialisable
