"""The real app with auth ON, and tokens written straight into the test database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.auth.tokens import hash_token, new_token
from app.config import Settings


def issue_token(database_url: str, owner: str, *, admin: bool = False) -> str:
    """A fresh token for `owner` (what `cerebros token create` does), returned in clear."""
    token_id, token = new_token()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO api_tokens (id, token_hash, owner, admin) VALUES (%s, %s, %s, %s)",
            (token_id, hash_token(token), owner, admin),
        )
    return token


def unique_owner(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def run_spec(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataset_id": "iris",
        "search_space": {"layers": [1, 2], "neurons": [4, 8]},
        "budget": {"max_trials": 2},
        "parameters": {"epochs": 2},
    }
    body.update(overrides)
    return body


@pytest.fixture(scope="module")
def auth_client(database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        auth_enabled=True,
        max_body_bytes=16 * 1024,
        max_queued_runs_per_owner=3,
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn
