"""What the API process holds for its lifetime (built in the lifespan, read by dependencies)."""

from __future__ import annotations

from dataclasses import dataclass

import procrastinate
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.events.hub import EventHub


@dataclass
class ApiState:
    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    queue: procrastinate.App
    hub: EventHub
