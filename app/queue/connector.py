"""procrastinate's psycopg connector, made to survive a database restart.

Measured before this (tests/acceptance/test_database_restart.py): when Postgres restarted,
the worker's LISTEN task failed to reconnect while the server was still down and died for
good, so the worker only found new jobs by polling (every 5 s by default).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import procrastinate
import psycopg
from procrastinate import connector as connector_module

log = logging.getLogger(__name__)

# What a worker does on a `job_inserted` notification: look for jobs now.
WAKE_UP = json.dumps({"type": "job_inserted", "job_id": None})


class ResilientPsycopgConnector(procrastinate.PsycopgConnector):
    """Reconnects its LISTEN forever and wakes the worker after every (re)connection."""

    def __init__(self, *, conninfo: str, max_backoff_s: float = 2.0, **pool_args: Any) -> None:
        super().__init__(conninfo=conninfo, **pool_args)
        self.max_backoff_s = max_backoff_s

    async def listen_notify(self, on_notification: connector_module.Notify, channels: Any) -> None:
        backoff = 0.1
        while True:
            try:
                await super().listen_notify(on_notification=on_notification, channels=channels)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job notifications lost (%s); reconnecting in %.1fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _loop_notify(
        self,
        on_notification: connector_module.Notify,
        connection: psycopg.AsyncConnection,
        timeout: float = connector_module.LISTEN_TIMEOUT,
    ) -> None:
        # Called right after each LISTEN: notifications sent while it was down are gone, so
        # have the worker look for jobs at once instead of at its next poll.
        await on_notification(channel="", payload=WAKE_UP)
        await super()._loop_notify(
            on_notification=on_notification, connection=connection, timeout=timeout
        )
