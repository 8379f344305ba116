"""The input contract (README "Limits"): every rejected request is a problem naming the field
and stores nothing. Through the real app (ASGI), which can send what a real server would not."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.api.conftest import count
from tests.api.test_runs_api import spec
from tests.security.conftest import auth_client, bearer, issue_token, unique_owner

__all__ = ["auth_client"]  # auth on: two owners for the run_id collision

JSON = {"content-type": "application/json"}


@pytest.fixture
def nothing_stored(db: psycopg.Connection) -> Iterator[None]:
    before = stored(db)
    yield
    assert stored(db) == before, "a rejected request stored something"


def stored(db: psycopg.Connection) -> tuple[int, int]:
    return count(db, "SELECT count(*) FROM runs"), count(
        db, "SELECT count(*) FROM procrastinate_jobs"
    )


def assert_problem(response: Response, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    fields = [e["field"] for e in problem["errors"]]
    assert field in fields, fields
    return problem


# Wrong types are 422: no string-to-number, bool-to-number or float-to-int coercion.
COERCIONS: list[tuple[dict[str, Any], str]] = [
    (spec(budget={"max_trials": "2"}), "budget.max_trials"),
    (spec(budget={"max_trials": True}), "budget.max_trials"),
    (spec(budget={"max_trials": 2.0}), "budget.max_trials"),
    (spec(budget={"max_trials": 2, "max_seconds": True}), "budget.max_seconds"),
    (spec(budget={"max_trials": 2, "max_seconds": "60"}), "budget.max_seconds"),
    (spec(parameters={"epochs": "1"}), "parameters.epochs"),
    (spec(parameters={"epochs": True}), "parameters.epochs"),
    (spec(parameters={"seed": 1.0}), "parameters.seed"),
    (spec(parameters={"validation_split": "0.2"}), "parameters.validation_split"),
    (spec(dataset_options={"n_samples": "100"}), "dataset_options.n_samples"),
    (spec(dataset_options={"noise": False}), "dataset_options.noise"),
    (spec(search_space={"minimum_levels": "1"}), "search_space.minimum_levels"),
    (spec(search_space={"p_lateral_connection": True}), "search_space.p_lateral_connection"),
    (spec(search_space={"learning_rate": [True]}), "search_space.learning_rate.0"),
    (spec(search_space={"learning_rate": ["0.01"]}), "search_space.learning_rate.0"),
    (spec(search_space={"activation": [1]}), "search_space.activation.0"),
    (spec(search_space={"layers": [1], "neurons": ["4"]}), "search_space.neurons.0"),
    (spec(search_space={"layers": [1], "neurons": [4, True]}), "search_space.neurons.1"),
    (spec(search_space={"layers": [1], "neurons": [4.0]}), "search_space.neurons.0"),
    (spec(search_space={"layers": ["1"], "neurons": [4]}), "search_space.layers.0"),
    (spec(search_space={"layers": [1, True], "neurons": [4]}), "search_space.layers.1"),
    (spec(search_space={"layers": [1.0], "neurons": [4]}), "search_space.layers.0"),
    (
        spec(search_space={"layers": [1], "neurons": [4], "learning_rate": ["1"]}),
        "search_space.learning_rate.0",
    ),
    (spec(dataset_id=["iris"]), "dataset_id"),
    (spec(run_id=12), "run_id"),
]


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(("body", "field"), COERCIONS, ids=[f for _, f in COERCIONS])
def test_wrong_types_are_422_not_coerced(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    assert_problem(client.post("/runs", json=body), 422, field)


def test_json_numbers_still_fit_their_fields(client: TestClient) -> None:
    """Strict, not pedantic: an integer is a fine float, 0.001 a fine learning rate."""
    body = spec(
        search_space={"layers": [1], "neurons": [4], "learning_rate": [0.001, 1]},
        budget={"max_trials": 2, "max_seconds": 60},
        run_id=str(uuid.uuid4()),
    )
    response = client.post("/runs", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["spec"]["search_space"]["learning_rate"] == [0.001, 1.0]


MALFORMED_JSON: list[bytes] = [
    b'{"dataset_id": "iris", "budget": {"max_trials": ' + b"9" * 5000 + b"}}",
    b"[" * 8000 + b"]" * 8000,  # as deep as fits in the test app's 16 KiB
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b'{"dataset_id": "ir\xffis"}',
    b'{"dataset_id": "\xed\xa0\x80"}',  # a UTF-8-encoded surrogate
    b'{"dataset_id": "iris",}',
]


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize("content", MALFORMED_JSON, ids=range(len(MALFORMED_JSON)))
def test_malformed_json_is_422_naming_body(client: TestClient, content: bytes) -> None:
    assert_problem(client.post("/runs", content=content, headers=JSON), 422, "body")


@pytest.mark.parametrize(
    ("content", "reason"),
    [(MALFORMED_JSON[0], "digits"), (MALFORMED_JSON[1], "nested"), (MALFORMED_JSON[3], "UTF-8")],
    ids=["digits", "depth", "utf8"],
)
def test_malformed_json_says_why(client: TestClient, content: bytes, reason: str) -> None:
    problem = assert_problem(client.post("/runs", content=content, headers=JSON), 422, "body")
    assert reason in problem["errors"][0]["message"], problem


@pytest.mark.usefixtures("nothing_stored")
def test_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    # No Content-Length: the size is only known by counting (the app's limit is 16 KiB).
    chunks = iter([b'{"dataset_id": "iris", "pad": "', *[b"x" * 1024] * 20, b'"}'])
    response = client.post("/runs", content=chunks, headers=JSON)
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "body")


def test_chunked_body_under_the_limit_is_read_whole(client: TestClient) -> None:
    raw = spec(objective="val_accuracy")
    text = json.dumps(raw).encode()
    chunks = iter([text[i : i + 7] for i in range(0, len(text), 7)])
    response = client.post("/runs", content=chunks, headers=JSON)
    assert response.status_code == 202, response.text


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(
    "lengths",
    [[b"abc"], [b"-1"], [b"+2"], [b" "], [b"2", b"3"]],
    ids=["abc", "negative", "plus", "blank", "conflicting"],
)
def test_bad_content_length_is_400_naming_it(client: TestClient, lengths: list[bytes]) -> None:
    # uvicorn's parser answers these itself (tests/hostile/test_http_framing.py); another
    # server or a proxy may pass them on, and then the app answers.
    headers = [(b"content-type", b"application/json")]
    headers += [(b"content-length", value) for value in lengths]
    response = client.post("/runs", content=b"{}", headers=headers)
    assert_problem(response, 400, "Content-Length")


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize("key", ["", " ", "\t \t"], ids=["empty", "space", "whitespace"])
def test_blank_idempotency_key_is_422(client: TestClient, key: str) -> None:
    for _ in range(2):  # the second used to be 409 "run None already exists"
        response = client.post("/runs", json=spec(), headers={"Idempotency-Key": key})
        assert_problem(response, 422, "Idempotency-Key")


@pytest.mark.usefixtures("nothing_stored")
def test_overlong_idempotency_key_names_the_header(client: TestClient) -> None:
    response = client.post("/runs", json=spec(), headers={"Idempotency-Key": "k" * 201})
    assert_problem(response, 422, "Idempotency-Key")


def test_taken_run_id_answers_alike_whoever_owns_it(
    auth_client: TestClient, db: psycopg.Connection, database_url: str
) -> None:
    """Another owner's run id is answered exactly like one's own: nothing says whose it is."""
    alice, bob = (bearer(issue_token(database_url, unique_owner(n))) for n in ("alice", "bob"))
    alices, bobs = str(uuid.uuid4()), str(uuid.uuid4())
    alice_keyed = {**alice, "Idempotency-Key": "k-1"}
    assert (
        auth_client.post("/runs", json=spec(run_id=alices), headers=alice_keyed).status_code == 202
    )
    assert auth_client.post("/runs", json=spec(run_id=bobs), headers=bob).status_code == 202
    before = stored(db)

    replay = auth_client.post("/runs", json=spec(run_id=alices), headers=alice_keyed)
    assert replay.status_code == 200 and replay.json()["id"] == alices  # her own key: a replay

    own = auth_client.post("/runs", json=spec(run_id=bobs), headers=bob)
    other = auth_client.post("/runs", json=spec(run_id=alices), headers=bob)
    keyed = auth_client.post(
        "/runs", json=spec(run_id=alices), headers={**bob, "Idempotency-Key": "k-1"}
    )

    problems = [assert_problem(r, 409, "run_id") for r in (own, other, keyed)]
    assert problems[0] == problems[1] == problems[2]
    assert "None" not in problems[0]["detail"] and alices not in other.text
    assert stored(db) == before
    owner = db.execute("SELECT owner FROM runs WHERE id = %s", (alices,)).fetchall()
    assert len(owner) == 1 and owner[0][0].startswith("alice")


PREDICT_JUNK: list[tuple[bytes, str]] = [
    (b'{"rows": [[1, 2, 3, NaN]]}', "rows.0.3"),
    (b'{"rows": [[1, 2], [Infinity, 0]]}', "rows.1.0"),
    (b'{"rows": [[-Infinity]]}', "rows.0.0"),
    (b'{"rows": [[1e400]]}', "rows.0.0"),
    (b'{"rows": [[{"x": 1}]]}', "rows.0.0"),  # a cell is a number, a string or null
    (b'{"rows": [[true]]}', "rows.0.0"),
    (b'{"rows": [[1]], "extra": 1}', "extra"),
]


@pytest.mark.usefixtures("nothing_stored")
@pytest.mark.parametrize(("content", "field"), PREDICT_JUNK, ids=[f for _, f in PREDICT_JUNK])
def test_predict_rejects_non_finite_values_and_unknown_fields(
    client: TestClient, content: bytes, field: str
) -> None:
    response = client.post(f"/runs/{uuid.uuid4()}/predict", content=content, headers=JSON)
    assert_problem(response, 422, field)
