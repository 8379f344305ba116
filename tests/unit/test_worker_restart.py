"""A worker that loses Postgres is started again instead of leaving the host without one."""

from __future__ import annotations

from typing import Any

import procrastinate
from procrastinate.exceptions import ConnectorException
from procrastinate.testing import InMemoryConnector

from app.config import Settings
from app.queue.worker import _work
from app.runtime import Runtime


class DownConnector(InMemoryConnector):
    """Every query fails as procrastinate's psycopg connector does with Postgres away."""

    async def execute_query_one_async(self, query: str, **arguments: Any) -> Any:
        raise ConnectorException("connection refused")

    async def execute_query_all_async(self, query: str, **arguments: Any) -> Any:
        raise ConnectorException("connection refused")

    async def execute_query_async(self, query: str, **arguments: Any) -> None:
        raise ConnectorException("connection refused")


async def test_a_worker_that_loses_the_database_returns_instead_of_raising() -> None:
    settings = Settings(database_url="postgresql://unused@127.0.0.1/unused")
    app = procrastinate.App(connector=DownConnector())
    runtime = Runtime(settings, settings.database_url, None, None, app)  # type: ignore[arg-type]
    async with app.open_async():
        stopped = await _work(app, runtime, settings, queues=["ml"], concurrency=1, heartbeat_s=0.5)
    assert stopped is False  # lost the database: the caller starts another worker
