"""What one process holds for its lifetime: settings, database, sessions and queue app.

The process entry point builds it (the API's lifespan, `cerebros worker`, `run --local`) and
passes it down: the worker to its tasks through procrastinate's `additional_context`, the
API to its routes through `app.state` and FastAPI dependencies. Nothing keeps it in a module
global.
"""

from __future__ import annotations

from dataclasses import dataclass

import procrastinate
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db.session import create_engine, create_session_factory


@dataclass
class Runtime:
    """Per-process resources.

    Attributes:
        settings: The process's configuration.
        database_url: The Postgres URL everything here points at.
        engine: The process's SQLAlchemy engine (one connection pool).
        sessions: Sessions on `engine`.
        queue: The procrastinate app for `database_url`; the worker opens it, the API defers
            jobs on its requests' own connections without opening it.
    """

    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    queue: procrastinate.App

    async def close(self) -> None:
        """Close the pooled database connections."""
        await self.engine.dispose()


def create_runtime(
    settings: Settings,
    database_url: str,
    queue: procrastinate.App,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
) -> Runtime:
    """A runtime with a new engine (nothing is connected yet); `Runtime.close` disposes of it.

    The queue app comes from the caller (`app.queue.app.create_queue_app`): the queue's tasks
    read the runtime, so this module cannot import the queue.
    """
    engine = create_engine(database_url, pool_size=pool_size, max_overflow=max_overflow)
    return Runtime(settings, database_url, engine, create_session_factory(engine), queue)
