"""The real app with auth ON, and tokens written straight into the test database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.auth.cache import TokenCache
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


class ShiftedClock:
    """Monotonic time that a test moves forward by hand (the token cache's clock)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def token_cache(client: TestClient) -> TokenCache:
    cache = client.app.state.token_cache  # type: ignore[attr-defined]
    assert isinstance(cache, TokenCache)
    return cache


def past_token_cache(client: TestClient) -> None:
    """Move the app's token cache past its bound, as if `CEREBROS_AUTH_CACHE_SECONDS` passed."""
    cache = token_cache(client)
    assert isinstance(cache.clock, ShiftedClock)
    cache.clock.advance(cache.ttl_s)


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
        token_cache(client).clock = ShiftedClock()
        yield client


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn
