"""Tells a trial's training thread that its run was cancelled (`CancelWatcher`)."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.urls import libpq_url
from app.runs import repository
from app.runs.cancel import CANCEL_CHANNEL

log = logging.getLogger(__name__)


class CancelWatcher:
    """Tells the training thread, without SQL on its side, that the run was cancelled.

    `cancel_run` NOTIFYs `CANCEL_CHANNEL` when it commits, so the flag is set within
    milliseconds (an epoch of a small network takes less than the old 1 s poll). The row is
    read once after LISTEN (a cancel committed just before) and then every `interval_s`
    (a notification lost with a dropped connection); without `database_url`, it only polls.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        run_id: uuid.UUID,
        database_url: str | None = None,
        interval_s: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.run_id = run_id
        self.database_url = database_url
        self.interval_s = interval_s if database_url else min(interval_s, 1.0)
        self.requested = threading.Event()

    def should_stop(self) -> bool:
        return self.requested.is_set()

    async def watch(self) -> None:
        while not self.requested.is_set():
            try:
                if self.database_url:
                    await self._listen()
                else:
                    await self._poll()
            except Exception:
                # A database hiccup must not kill training; try again shortly.
                log.warning("cancel watch for run %s failed", self.run_id, exc_info=True)
                await asyncio.sleep(min(self.interval_s, 1.0))

    async def _poll(self) -> None:
        while not await self._cancelled():
            await asyncio.sleep(self.interval_s)
        self.requested.set()

    async def _listen(self) -> None:
        assert self.database_url is not None
        async with await psycopg.AsyncConnection.connect(
            libpq_url(self.database_url), autocommit=True
        ) as conn:
            await conn.execute(f"LISTEN {CANCEL_CHANNEL}")
            while not await self._cancelled():
                async for notify in conn.notifies(timeout=self.interval_s):
                    if notify.payload == str(self.run_id):
                        break
            self.requested.set()

    async def _cancelled(self) -> bool:
        async with self.sessions() as session:
            run = await repository.get_run(session, self.run_id)
        # A run that ended otherwise (failed while this trial trained) stops it too.
        return run is None or run.cancel_requested_at is not None or run.status.is_final
