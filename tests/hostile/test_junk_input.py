"""Unicode, huge numbers, nested junk and wrong content types: a 4xx and nothing stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.security.conftest import bearer, issue_token, run_spec, unique_owner


@pytest.fixture(scope="module")
def token(database_url: str) -> str:
    return issue_token(database_url, unique_owner("junk"))


@pytest.fixture
def stored(database_url: str) -> Iterator[Any]:
    """Counts runs and jobs before the test and checks they are unchanged after it."""

    def counts() -> tuple[int, int]:
        with psycopg.connect(database_url) as conn:
            runs = conn.execute("SELECT count(*) FROM runs").fetchone()
            jobs = conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()
        assert runs is not None and jobs is not None
        return int(runs[0]), int(jobs[0])

    before = counts()
    yield
    assert counts() == before, "a rejected request stored something"


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": [value]}
    return value


JUNK_BODIES: list[Any] = [
    run_spec(dataset_id="ïřïš\u202e\u0000"),
    run_spec(dataset_id="x" * 10_000),
    run_spec(objective="💥" * 100),
    run_spec(budget={"max_trials": 10**30}),
    run_spec(budget={"max_trials": -1}),
    run_spec(budget={"max_seconds": 1e308 * 10}),
    run_spec(parameters={"epochs": 1e400}),
    run_spec(dataset_options={"n_samples": 10**9}),
    run_spec(search_space={"minimum_levels": 2**63}),
    run_spec(search_space={"layers": list(range(5000))}),
    run_spec(extra_field={"deep": nested(50)}),
    run_spec(run_id="not-a-uuid"),
    nested(200),
    [run_spec()],
    "iris",
    None,
    12,
]


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize("body", JUNK_BODIES, ids=range(len(JUNK_BODIES)))
def test_junk_body_is_4xx_and_stores_nothing(
    auth_client: TestClient, token: str, body: Any
) -> None:
    raw = json.dumps(body).encode()
    response = auth_client.post(
        "/runs", content=raw, headers={**bearer(token), "content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("text/plain", json.dumps(run_spec()).encode()),
        ("application/x-www-form-urlencoded", b"dataset_id=iris"),
        ("multipart/form-data; boundary=x", b"--x\r\n\r\niris\r\n--x--"),
        ("application/json", b"\xff\xfe\x00junk"),
        ("application/json", b'{"dataset_id": "iris"' + b" " * 10),
        ("application/json", b'{"dataset_id": NaN}'),
        (None, json.dumps(run_spec()).encode()),
    ],
)
def test_wrong_content_type_or_undecodable_body_is_4xx(
    auth_client: TestClient, token: str, content_type: str | None, content: bytes
) -> None:
    headers = bearer(token)
    if content_type:
        headers["content-type"] = content_type
    response = auth_client.post("/runs", content=content, headers=headers)
    assert response.status_code in {400, 415, 422}, response.text


@pytest.mark.usefixtures("stored")
def test_oversized_body_is_413(auth_client: TestClient, token: str) -> None:
    body = run_spec(pad="x" * 20_000)
    response = auth_client.post("/runs", json=body, headers=bearer(token))
    assert response.status_code == 413


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize(
    ("path", "params", "headers"),
    [
        ("/runs", {"limit": 10**20}, {}),
        ("/runs", {"limit": "ten"}, {}),
        ("/runs", {"cursor": "💥" * 10}, {}),
        ("/runs", {"cursor": "x" * 1000}, {}),
        ("/runs", {"status": "queued'; DROP TABLE runs; --"}, {}),
        ("/runs/not-a-uuid", {}, {}),
        ("/runs/00000000-0000-0000-0000-000000000000/events", {"after": -1}, {}),
        ("/runs/00000000-0000-0000-0000-000000000000/events", {"after": 2**70}, {}),
        ("/runs/00000000-0000-0000-0000-000000000000/trials/99999999999", {}, {}),
        ("/runs/00000000-0000-0000-0000-000000000000/events/stream", {}, {"Last-Event-ID": "-1"}),
        ("/events/stream", {"pattern": "**." * 100}, {}),
    ],
)
def test_hostile_query_path_and_headers_are_4xx(
    auth_client: TestClient,
    token: str,
    path: str,
    params: dict[str, Any],
    headers: dict[str, str],
) -> None:
    response = auth_client.get(path, params=params, headers={**bearer(token), **headers})
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.usefixtures("stored")
def test_huge_idempotency_key_is_422(auth_client: TestClient, token: str) -> None:
    response = auth_client.post(
        "/runs", json=run_spec(), headers={**bearer(token), "Idempotency-Key": "k" * 500}
    )
    assert response.status_code == 422
