"""Publishing a run's events: `RunEvents`, bound to one run (the SQL is `app.events.store`'s)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.store import is_published, publish_event

__all__ = ["RunEvents", "publish_event"]


class RunEvents:
    """The events of one run: publish them, each once per dedup key.

    `publish` opens its own transaction, or joins the caller's (`session=`) when the event
    must commit together with other writes (a trial row, the run's final status).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> None:
        self.sessions = sessions
        self.run_id = run_id

    async def publish(
        self,
        name: str,
        payload: dict[str, Any] | None = None,
        *,
        dedup: str | None = None,
        session: AsyncSession | None = None,
    ) -> int | None:
        """Publish one event; its id, or None when `dedup` was already published."""
        if session is not None:
            return await publish_event(session, self.run_id, name, payload, dedup_key=dedup)
        async with self.sessions.begin() as own:
            return await publish_event(own, self.run_id, name, payload, dedup_key=dedup)

    async def is_published(self, dedup: str) -> bool:
        """True when the event with key `dedup` was published (and committed)."""
        async with self.sessions() as session:
            return await is_published(session, self.run_id, dedup)
