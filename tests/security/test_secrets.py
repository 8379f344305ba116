"""No secret (token, database password) in an error body or a log line."""

from __future__ import annotations

import logging
from typing import cast

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.api.state import ApiState
from app.config import Settings
from app.db.session import create_engine, create_session_factory
from app.events.hub import EventHub
from app.queue.app import create_queue_app
from tests.support.processes import free_port

PASSWORD = "pw-Do-Not-Leak-7f3a"


@pytest.fixture
def unreachable_db_client() -> TestClient:
    """The app wired to a database nobody listens on, whose URL holds a password."""
    url = f"postgresql://cerebros:{PASSWORD}@127.0.0.1:{free_port()}/cerebros"
    app = create_app(Settings(database_url=url, auth_enabled=False))
    engine = create_engine(url)
    # No lifespan (its event hub would wait 10 s for the database): state set by hand.
    app.state.cerebros = ApiState(
        settings=Settings(database_url=url, auth_enabled=False),
        database_url=url,
        engine=engine,
        sessions=create_session_factory(engine),
        queue=create_queue_app(url),
        hub=cast(EventHub, None),
    )
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/health/ready"), ("GET", "/runs"), ("POST", "/runs"), ("GET", "/runs/" + "0" * 32)],
)
def test_database_failure_problem_has_no_password(
    unreachable_db_client: TestClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"dataset_id": "iris"} if method == "POST" else None
    response = unreachable_db_client.request(method, path, json=body)
    assert response.status_code == 503, response.text
    assert response.json()["status"] == 503
    assert PASSWORD not in response.text
    assert PASSWORD not in caplog.text


def test_database_failure_during_token_check_is_503_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"postgresql://cerebros:{PASSWORD}@127.0.0.1:{free_port()}/cerebros"
    settings = Settings(database_url=url, auth_enabled=True)
    app = create_app(settings)
    engine = create_engine(url)
    app.state.cerebros = ApiState(
        settings=settings,
        database_url=url,
        engine=engine,
        sessions=create_session_factory(engine),
        queue=create_queue_app(url),
        hub=cast(EventHub, None),
    )
    token = "cer_0123456789ab_secret-token-never-shown"
    caplog.set_level(logging.DEBUG)
    response = TestClient(app, raise_server_exceptions=False).get(
        "/runs", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 503
    for secret in (PASSWORD, token, "secret-token-never-shown"):
        assert secret not in response.text
        assert secret not in caplog.text
