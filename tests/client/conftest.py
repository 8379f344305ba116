"""A real API and a real worker for the client and CLI tests (one module shares them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.streaming.conftest import Service
from tests.support.postgres import migrated_database
from tests.support.processes import api_server, service_env, worker_process


@pytest.fixture(scope="module")
def service(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    log_dir = tmp_path_factory.mktemp("client")
    env = service_env(
        database_url, CEREBROS_ARTIFACTS_DIR=str(log_dir / "artifacts"), CEREBROS_AUTH="false"
    )
    with api_server(env, log_dir) as base, worker_process(env, log_dir):
        yield Service(base, env, log_dir)


@pytest.fixture(scope="module")
def database_url(admin_url: str) -> Iterator[str]:
    """This module's own database: a real worker takes every queued job it finds, so jobs
    left queued by other tests' runs must not be in its way."""
    yield from migrated_database(admin_url, prefix="cerebros_mod")
