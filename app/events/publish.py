"""Publishing a run's events: `RunEvents`, bound to one run (the SQL is `app.events.store`'s)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.store import is_published, notify_live, publish_event

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

    async def notify_live(
        self, name: str, payload: dict[str, Any], *, session: AsyncSession | None = None
    ) -> None:
        """Send a live-only notification: no row, no event id, never replayed.

        Open streams get it at once as an SSE event without `id:` (so a client's
        Last-Event-ID never points at it); a stream that connects later never sees it. With
        `session` it is sent when that transaction commits (and not at all if it rolls back);
        otherwise in a transaction of its own that does not wait for its commit to be flushed
        (there is nothing durable in it).

        Raises:
            LiveEventTooLarge: the name and payload would not fit in one NOTIFY payload.
        """
        if session is not None:
            await notify_live(session, self.run_id, name, payload)
            return
        async with self.sessions.begin() as own:
            await notify_live(own, self.run_id, name, payload, own_transaction=True)

    async def is_published(self, dedup: str) -> bool:
        """True when the event with key `dedup` was published (and committed)."""
        async with self.sessions() as session:
            return await is_published(session, self.run_id, dedup)
