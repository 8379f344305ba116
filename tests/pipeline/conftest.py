"""Run the NAS pipeline in-process against the test database and the real Keras engine."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db.models import Run, RunEvent
from app.queue.app import create_queue_app
from app.runtime import Runtime

TINY_SPEC: dict[str, Any] = {
    "dataset_id": "iris",
    "objective": "val_accuracy",
    "search_space": {"layers": [1], "neurons": [4, 8, 16]},
    "budget": {"max_trials": 2},
    # Random search: every trial trains the 2 epochs (the default, asha, trains 1 epoch each).
    "parameters": {"strategy": "random", "epochs": 2, "seed": 3},
}

ResourcesFactory = Callable[..., Runtime]


@pytest.fixture
def make_resources(
    database_url: str,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> ResourcesFactory:
    def make(**settings: Any) -> Runtime:
        config = Settings(
            database_url=database_url, artifacts_dir=tmp_path / "artifacts", **settings
        )
        queue = create_queue_app(database_url, config)  # never opened: no job is deferred
        return Runtime(config, database_url, engine, session_factory, queue)

    return make


async def insert_run(
    sessions: async_sessionmaker[AsyncSession], spec: dict[str, Any] | None = None
) -> uuid.UUID:
    run_id = uuid.uuid4()
    async with sessions.begin() as session:
        session.add(Run(id=run_id, spec=spec or TINY_SPEC))
    return run_id


async def event_names(sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> list[str]:
    async with sessions() as session:
        rows = await session.execute(
            select(RunEvent.name).where(RunEvent.run_id == run_id).order_by(RunEvent.id)
        )
    return list(rows.scalars())


async def events(
    sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID, name: str
) -> list[RunEvent]:
    async with sessions() as session:
        rows = await session.execute(
            select(RunEvent)
            .where(RunEvent.run_id == run_id, RunEvent.name == name)
            .order_by(RunEvent.id)
        )
    return list(rows.scalars())


async def load_run(sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> Run:
    async with sessions() as session:
        run = await session.get(Run, run_id)
    assert run is not None
    return run


async def stored_artifacts(
    sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID
) -> set[str]:
    """Names of the run's artifacts in Postgres (run_artifacts)."""
    from app.runs.artifacts import list_artifacts

    async with sessions() as session:
        return {a.name for a in await list_artifacts(session, run_id)}
