"""Per-process resources of a worker (database engine, sessions, settings)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings, get_settings
from app.db.session import create_engine, create_session_factory, resolve_database_url


@dataclass
class WorkerResources:
    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


_resources: WorkerResources | None = None


def init_worker_resources(database_url: str, settings: Settings | None = None) -> WorkerResources:
    global _resources
    settings = settings or get_settings()
    engine = create_engine(database_url, pool_size=4)
    _resources = WorkerResources(settings, database_url, engine, create_session_factory(engine))
    return _resources


def get_worker_resources() -> WorkerResources:
    """The resources set by `cerebros worker`, or built from the settings on first use."""
    if _resources is None:
        settings = get_settings()
        return init_worker_resources(resolve_database_url(settings), settings)
    return _resources
