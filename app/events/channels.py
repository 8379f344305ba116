"""The event hub's own connections to Postgres: one LISTENs, one sends syncs.

Both are plain autocommit connections outside any pool, each reconnecting with capped
exponential backoff. The hub (`app.events.hub`) decides what a notification means and when a
sync is needed; this module only moves them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

import psycopg

from app.events.names import EVENTS_CHANNEL, SYNC_CHANNEL

log = logging.getLogger(__name__)

HUB_APPLICATION_NAME: Final = "cerebros-event-hub"
SYNC_APPLICATION_NAME: Final = "cerebros-event-hub-sync"
RUNS_CHANNEL: Final = "cerebros_runs"  # a run's row turned final (migration 0005)
CHANNELS: Final = (EVENTS_CHANNEL, RUNS_CHANNEL, SYNC_CHANNEL)
SYNC_STATEMENT: Final = "SELECT pg_notify(%s, pg_snapshot_xmin(pg_current_snapshot())::text)"

# A notification as the listener hands it over: channel, payload, sender's backend pid.
Notification = tuple[str, str, int]


class HubChannels:
    """The LISTEN connection and the sync connection of one hub.

    `on_listen` runs each time a LISTEN is in place (what was sent before is lost),
    `on_notify` for each notification, `on_lost` when the LISTEN connection is gone,
    `on_sync_sent` just before each sync goes out. `request_sync` asks for one.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        on_listen: Callable[[], None],
        on_notify: Callable[[Notification], None],
        on_lost: Callable[[], None],
        on_sync_sent: Callable[[], None],
        min_backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.conninfo = conninfo
        self.on_listen = on_listen
        self.on_notify = on_notify
        self.on_lost = on_lost
        self.on_sync_sent = on_sync_sent
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.connected = asyncio.Event()  # set while the LISTEN connection is up
        self.reconnects = 0
        self.sync_pid: int | None = None  # the sync connection's backend (its notifications)
        self.sync_requested = asyncio.Event()

    def request_sync(self) -> None:
        self.sync_requested.set()

    async def listen_forever(self) -> None:
        backoff = self.min_backoff_s
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name=HUB_APPLICATION_NAME
                ) as conn:
                    for channel in CHANNELS:
                        await conn.execute(f"LISTEN {channel}")
                    self.on_listen()
                    self.connected.set()
                    backoff = self.min_backoff_s
                    async for notify in conn.notifies():
                        self.on_notify((notify.channel, notify.payload, notify.pid))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event hub connection lost (%s); retrying in %.1fs", exc, backoff)
            self.on_lost()
            self.connected.clear()
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def sync_forever(self) -> None:
        """Send a sync each time one is requested."""
        backoff = self.min_backoff_s
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name=SYNC_APPLICATION_NAME
                ) as conn:
                    # The sync's commit holds nothing durable: do not wait for its WAL flush.
                    await conn.execute("SET synchronous_commit TO off")
                    self.sync_pid = conn.info.backend_pid
                    backoff = self.min_backoff_s
                    while True:
                        await self.sync_requested.wait()
                        self.sync_requested.clear()
                        self.on_sync_sent()
                        await conn.execute(SYNC_STATEMENT, (SYNC_CHANNEL,))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event hub sync connection lost (%s); retrying in %.1fs", exc, backoff)
            self.sync_pid = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)
            self.sync_requested.set()
