"""A real API process (uvicorn) on a database of the module's own, shared by the module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.postgres import migrated_database
from tests.support.processes import api_server, service_env


@dataclass
class Service:
    base: str
    env: dict[str, str]
    log_dir: Path


@pytest.fixture(scope="module")
def service(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    log_dir = tmp_path_factory.mktemp("service")
    # Authentication is covered by its own tests; here the single local owner is enough.
    env = service_env(
        database_url, CEREBROS_ARTIFACTS_DIR=str(log_dir / "artifacts"), CEREBROS_AUTH="false"
    )
    with api_server(env, log_dir) as base:
        yield Service(base, env, log_dir)


@pytest.fixture(scope="module")
def database_url(admin_url: str) -> Iterator[str]:
    """This module's own database: a real worker takes every queued job it finds, so jobs
    left queued by other tests' runs must not be in its way."""
    yield from migrated_database(admin_url, prefix="cerebros_mod")
