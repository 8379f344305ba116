"""The real app with auth on (tokens in the test database) and dataset helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.config import Settings
from tests.security.conftest import bearer, issue_token, unique_owner

#: Small, so the over-the-limit cases need no big file.
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=database_url, auth_enabled=True, max_dataset_bytes=LIMIT)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def owners(database_url: str) -> dict[str, dict[str, str]]:
    """Bearer headers of alice, bob and an admin."""
    return {
        "alice": bearer(issue_token(database_url, unique_owner("alice"))),
        "bob": bearer(issue_token(database_url, unique_owner("bob"))),
        "admin": bearer(issue_token(database_url, unique_owner("admin"), admin=True)),
    }


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def stored(db: psycopg.Connection) -> tuple[int, int]:
    """(datasets, chunks) rows."""
    row = db.execute(
        "SELECT (SELECT count(*) FROM datasets), (SELECT count(*) FROM dataset_chunks)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def upload(
    client: TestClient,
    headers: dict[str, str],
    content: bytes,
    filename: str = "data.csv",
    **fields: str,
) -> Any:
    return client.post(
        "/datasets", files={"file": (filename, content)}, data=fields, headers=headers
    )
