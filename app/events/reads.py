"""The event stream's reads, each in a short session of a pool (the SQL is `app.events.store`'s).

The streams read their history through the normal pool; the hub reads through a pool of its
own (`EventHub.for_database`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events import store as event_sql
from app.events.store import EventPosition, FinalRuns
from app.events.subscription import HubEvent, HubPage


class EventStore:
    """Reads of the event stream, each in a short session of `sessions`' pool."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def page(
        self,
        after: EventPosition,
        *,
        limit: int,
        run_id: uuid.UUID | None = None,
        owner: str | None = None,
    ) -> HubPage:
        async with self.sessions() as session:
            page = await event_sql.released_events(
                session, after=after, limit=limit, run_id=run_id, owner=owner
            )
        events = [HubEvent.from_row(row, run_owner) for row, run_owner in page.rows]
        return HubPage(events, page.horizon, page.full, page.held_back)

    async def frontier(self) -> tuple[EventPosition, bool]:
        async with self.sessions() as session:
            return await event_sql.released_frontier(session)

    async def position_of(self, event_id: int) -> EventPosition:
        async with self.sessions() as session:
            return await event_sql.event_position(session, event_id)

    async def final_runs(self, run_ids: Collection[uuid.UUID]) -> FinalRuns:
        async with self.sessions() as session:
            return await event_sql.final_runs(session, run_ids)

    async def events(self, event_ids: Collection[int]) -> list[HubEvent]:
        """The events with these ids that still exist (notified too large to carry them)."""
        async with self.sessions() as session:
            rows = await event_sql.events_by_id(session, event_ids)
        return [HubEvent.from_row(row, run_owner) for row, run_owner in rows]
