"""Bearer tokens: what needs one, what a bad one gets, revocation, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.security.conftest import (
    ShiftedClock,
    bearer,
    issue_token,
    past_token_cache,
    run_spec,
    token_cache,
    unique_owner,
)

RUN = str(uuid.uuid4())
PROTECTED = [
    ("GET", "/runs"),
    ("POST", "/runs"),
    ("GET", f"/runs/{RUN}"),
    ("GET", f"/runs/{RUN}/events"),
    ("GET", f"/runs/{RUN}/events/stream"),
    ("GET", "/events/stream"),
    ("GET", f"/runs/{RUN}/trials"),
    ("GET", f"/runs/{RUN}/trials/0"),
    ("GET", f"/runs/{RUN}/model"),
    ("POST", f"/runs/{RUN}/predict"),
    ("POST", f"/runs/{RUN}/cancel"),
]


def assert_401(response: object) -> None:
    assert response.status_code == 401, response.text  # type: ignore[attr-defined]
    assert response.headers["www-authenticate"].startswith("Bearer")  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    assert response.json()["status"] == 401  # type: ignore[attr-defined]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_route_but_health_and_docs_needs_a_token(
    auth_client: TestClient, method: str, path: str
) -> None:
    assert_401(auth_client.request(method, path, json=run_spec()))


def test_every_operation_in_the_openapi_document_is_protected(auth_client: TestClient) -> None:
    document = auth_client.get("/openapi.json").json()
    assert "BearerToken" in document["components"]["securitySchemes"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/health"):
                assert "security" not in operation, path
                continue
            assert operation.get("security") == [{"BearerToken": []}], (method, path)
            assert "401" in operation["responses"], (method, path)


@pytest.mark.parametrize("path", ["/health", "/health/ready", "/openapi.json", "/docs"])
def test_health_and_docs_are_open(auth_client: TestClient, path: str) -> None:
    assert auth_client.get(path).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer cer_0123456789ab_not-a-real-secret-xyz",
        "Bearer not-even-our-format-ŧøķēñ",
        "Bearer " + "A" * 5000,
        "Basic dXNlcjpwYXNz",
        "Bearer",
    ],
)
def test_invalid_token_is_401_and_never_echoed(auth_client: TestClient, header: str) -> None:
    response = auth_client.get("/runs", headers={"Authorization": header.encode()})
    assert_401(response)
    secret = header.removeprefix("Bearer").removeprefix("Basic").strip()
    if secret:
        assert secret not in response.text
        assert secret not in str(response.headers)


def test_token_of_another_secret_with_a_known_id_is_rejected(
    auth_client: TestClient, database_url: str
) -> None:
    token = issue_token(database_url, unique_owner("forger"))
    forged = token[: token.rindex("_") + 1] + "x" * 43
    assert auth_client.get("/runs", headers=bearer(token)).status_code == 200
    assert_401(auth_client.get("/runs", headers=bearer(forged)))


def test_revoked_token_is_401(
    auth_client: TestClient, database_url: str, db: psycopg.Connection
) -> None:
    token = issue_token(database_url, unique_owner("revoked"))
    assert auth_client.get("/runs", headers=bearer(token)).status_code == 200
    token_id = token.split("_")[1]
    db.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = %s", (token_id,))
    past_token_cache(auth_client)  # revocation takes effect within CEREBROS_AUTH_CACHE_SECONDS
    response = auth_client.get("/runs", headers=bearer(token))
    assert_401(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_revoked_token_is_refused_within_the_cache_bound(
    auth_client: TestClient, database_url: str, db: psycopg.Connection
) -> None:
    """A checked token is trusted for CEREBROS_AUTH_CACHE_SECONDS (default 5 s), no longer."""
    cache = token_cache(auth_client)
    assert cache.ttl_s == 5.0
    clock = cache.clock
    assert isinstance(clock, ShiftedClock)
    token = issue_token(database_url, unique_owner("cached"))
    assert auth_client.get("/runs", headers=bearer(token)).status_code == 200
    db.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = %s", (token.split("_")[1],))
    clock.advance(cache.ttl_s - 0.5)  # within the bound: still the cached answer
    assert auth_client.get("/runs", headers=bearer(token)).status_code == 200
    clock.advance(0.5)  # the bound has passed since the check: read again, refused
    assert_401(auth_client.get("/runs", headers=bearer(token)))
    clock.advance(cache.ttl_s * 10)  # a refusal is not cached either way: still refused
    assert_401(auth_client.get("/runs", headers=bearer(token)))


def test_tokens_are_stored_hashed(database_url: str, db: psycopg.Connection) -> None:
    token = issue_token(database_url, unique_owner("hashed"))
    rows = db.execute("SELECT id, token_hash FROM api_tokens").fetchall()
    assert all(token not in f"{i} {h}" for i, h in rows)
    assert all(token.split("_", 2)[2] not in h for _, h in rows)


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "token", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_create_list_revoke(auth_client: TestClient, database_url: str) -> None:
    owner = unique_owner("cli")
    created = cli(database_url, "create", "--owner", owner)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    token_id = token.split("_")[1]
    assert (
        auth_client.post("/runs", json=run_spec(), headers=bearer(token)).json()["owner"] == owner
    )

    listed = cli(database_url, "list")
    assert listed.returncode == 0, listed.stderr
    assert f"cer_{token_id}" in listed.stdout and owner in listed.stdout
    assert token not in listed.stdout

    revoked = cli(database_url, "revoke", f"cer_{token_id[:8]}")
    assert revoked.returncode == 0, revoked.stderr
    past_token_cache(auth_client)
    assert_401(auth_client.get("/runs", headers=bearer(token)))
    assert cli(database_url, "revoke", "ffffffffffff").returncode == 1


def test_cli_admin_token_sees_everyone(auth_client: TestClient, database_url: str) -> None:
    created = cli(database_url, "create", "--owner", unique_owner("root"), "--admin")
    assert created.returncode == 0, created.stderr
    owners = {
        r["owner"]
        for r in auth_client.get(
            "/runs", params={"limit": 200}, headers=bearer(created.stdout.strip())
        ).json()["items"]
    }
    assert len(owners) >= 1
