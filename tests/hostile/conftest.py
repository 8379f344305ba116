"""A real API process (uvicorn, auth ON) and a token for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.conftest import auth_client, issue_token, unique_owner

__all__ = ["auth_client"]  # the security tests' app (auth on, queued-run limit 3)
from tests.support.processes import api_server, service_env


@pytest.fixture(scope="module")
def live_api(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of `cerebros serve` with auth on and a queued-run limit high enough for load."""
    logs: Path = tmp_path_factory.mktemp("hostile-api")
    env = service_env(
        database_url,
        CEREBROS_AUTH="true",
        CEREBROS_MAX_QUEUED_RUNS_PER_OWNER="100000",
        CEREBROS_ARTIFACTS_DIR=str(logs / "artifacts"),
    )
    with api_server(env, logs) as base:
        yield base


@pytest.fixture(scope="module")
def live_token(database_url: str) -> str:
    return issue_token(database_url, unique_owner("hostile"))
