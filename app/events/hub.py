"""The LISTEN fan-out: one Postgres connection per process, any number of subscribers.

Stream order is (xid, id): the writing transaction's id, then the event id. Event ids come
from a sequence, so two writers can commit id n after n + 1; a transaction's xid is taken
when it first writes, and an event is *released* only once every transaction with a smaller
xid has ended (`xid < pg_snapshot_xmin`). Released events form a prefix of the order that
only grows, so a position (xid, id) is a cursor nothing can later slip in front of.

`EventHub` LISTENs on one autocommit psycopg connection. A notification only wakes it: it
reads the released events after its own cursor, once for all subscribers (paged, through the
normal pool), and hands each to every interested subscriber's bounded queue. When committed
events wait behind an older transaction (which may end without notifying), it re-reads every
`recheck_s` until they are released. A lost LISTEN connection costs nothing but a re-read.

The hub also knows when a followed run is over (the `runs_notify_final` trigger, migration
0005) and whether a stream's token was revoked (checked in one batch every
`auth_recheck_s`): streams need no database query of their own while idle.

Subscribers never block the hub: one whose queue is full is emptied and given `RESYNC`,
meaning "you missed events: catch up from the database after your last position".
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Final

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.urls import libpq_url
from app.events import store as event_sql
from app.events.names import EVENTS_CHANNEL
from app.events.store import EventPosition, FinalRuns
from app.events.subscription import (
    RESYNC,
    HubEvent,
    HubPage,
    StreamSlots,
    Subscription,
)

log = logging.getLogger(__name__)

HUB_APPLICATION_NAME: Final = "cerebros-event-hub"
RUNS_CHANNEL: Final = "cerebros_runs"  # a run's row turned final (migration 0005)


class EventStore:
    """The hub's and the streams' reads, each in a short session of the normal pool."""

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


# Given the token ids of open streams, the ones revoked (or deleted) since.
RevokedTokens = Callable[[frozenset[str]], Awaitable[frozenset[str]]]


class EventHub:
    """Fan events out from one LISTEN connection to many in-process subscribers."""

    def __init__(
        self,
        database_url: str,
        store: EventStore,
        *,
        revoked_tokens: RevokedTokens | None = None,
        auth_recheck_s: float = 10.0,
        recheck_s: float = 0.075,
        min_backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        page_size: int = 500,
    ) -> None:
        self.conninfo = libpq_url(database_url)
        self.store = store
        self.revoked_tokens = revoked_tokens
        self.auth_recheck_s = auth_recheck_s
        self.recheck_s = recheck_s
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.page_size = page_size
        self.subscribers: set[Subscription] = set()
        self.streams = StreamSlots()
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.cursor: EventPosition | None = None  # every released event up to it was offered
        self._by_run: dict[uuid.UUID, set[Subscription]] = {}
        self._all_runs: set[Subscription] = set()
        self._pending_ends: dict[uuid.UUID, int] = {}  # run -> horizon that releases its end
        self._held_back = False
        self._check_runs = False
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def for_database(
        cls,
        database_url: str,
        sessions: async_sessionmaker[AsyncSession],
        *,
        revoked_tokens: RevokedTokens | None = None,
        auth_recheck_s: float = 10.0,
    ) -> EventHub:
        """A hub that reads events through `sessions` (the process's normal pool)."""
        return cls(
            database_url,
            EventStore(sessions),
            revoked_tokens=revoked_tokens,
            auth_recheck_s=auth_recheck_s,
        )

    async def start(self) -> None:
        """Start listening (returns once the first LISTEN is in place, or after 10 s)."""
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="event-hub-listen"),
            asyncio.create_task(self._dispatch_forever(), name="event-hub-dispatch"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 10)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self.connected.clear()

    @contextlib.asynccontextmanager
    async def subscribe(
        self,
        pattern: str | None = None,
        *,
        run_id: uuid.UUID | None = None,
        owner: str | None = None,
        token_id: str | None = None,
        max_queue: int = 1000,
    ) -> AsyncIterator[Subscription]:
        """Receive matching events released after `hub_position`, until the block exits.

        Subscribe *before* reading history from the database, then skip positions already
        seen: that way nothing released in between is lost.
        """
        sub = Subscription(
            pattern=pattern,
            run_id=run_id,
            owner=owner,
            token_id=token_id,
            max_queue=max_queue,
            hub_position=self.cursor,
        )
        self.subscribers.add(sub)
        if run_id is None:
            self._all_runs.add(sub)
        else:
            self._by_run.setdefault(run_id, set()).add(sub)
        try:
            yield sub
        finally:
            self.subscribers.discard(sub)
            self._all_runs.discard(sub)
            if run_id is not None:
                followers = self._by_run.get(run_id, set())
                followers.discard(sub)
                if not followers:
                    self._by_run.pop(run_id, None)
                    self._pending_ends.pop(run_id, None)

    def expect_end(self, run_id: uuid.UUID, settled_at: int) -> None:
        """Give the run's subscribers `RUN_ENDED` once its events are released.

        The run is final and its events all have xid < `settled_at`: once those are released, its
        subscribers get `RUN_ENDED` (after its last events).
        """
        self._pending_ends[run_id] = max(settled_at, self._pending_ends.get(run_id, 0))
        self._wake.set()

    # --- internals -------------------------------------------------------------------------

    async def _listen_forever(self) -> None:
        backoff = self.min_backoff_s
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name=HUB_APPLICATION_NAME
                ) as conn:
                    await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    await conn.execute(f"LISTEN {RUNS_CHANNEL}")
                    if self.reconnects:
                        # Runs may have ended while nobody listened; events are re-read anyway.
                        self._check_runs = True
                    self.connected.set()
                    self._wake.set()
                    backoff = self.min_backoff_s
                    async for notify in conn.notifies():
                        if notify.channel == RUNS_CHANNEL:
                            self._on_run_final(notify.payload)
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event hub connection lost (%s); retrying in %.1fs", exc, backoff)
            self.connected.clear()
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    def _on_run_final(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            run_id, xid = uuid.UUID(data["run_id"]), int(data["xid"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed run notification %r", payload)
            return
        if run_id in self._by_run:
            # Every event of the run was written by its final transaction or before it.
            self.expect_end(run_id, xid + 1)

    async def _dispatch_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_auth_check = loop.time() + self.auth_recheck_s
        backoff = self.min_backoff_s
        retry = False
        while True:
            eager = retry or self._held_back or self._pending_ends or self.cursor is None
            delay = backoff if retry else self.recheck_s if eager else None
            until_auth = max(0.0, next_auth_check - loop.time())
            timeout = until_auth if delay is None else min(delay, until_auth)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                await self._read()
            except Exception as exc:
                if retry:
                    backoff = min(backoff * 2, self.max_backoff_s)
                else:
                    log.warning("event hub could not read events (%s); retrying", exc)
                retry = True
            else:
                retry, backoff = False, self.min_backoff_s
            if loop.time() >= next_auth_check:
                await self._check_tokens()
                next_auth_check = loop.time() + self.auth_recheck_s

    async def _read(self) -> None:
        """Offer everything released since the cursor; then the ends of followed runs."""
        if self._check_runs and self._by_run:
            ended = await self.store.final_runs(list(self._by_run))
            for run_id in ended.run_ids:
                self.expect_end(run_id, ended.settled_at)
        self._check_runs = False
        if self.cursor is None or not self.subscribers:
            # Nobody to serve (or no cursor yet): only keep the cursor current, cheaply.
            self.cursor, self._held_back = await self.store.frontier()
            for sub in list(self.subscribers):
                sub.offer(RESYNC)  # subscribed meanwhile, against an older cursor
            return
        while True:
            page = await self.store.page(self.cursor, limit=self.page_size)
            for item in page.events:
                for sub in self._interested(item):
                    sub.offer(item)
            if page.events:
                self.cursor = page.events[-1].position
            if not page.full:
                break
        self._held_back = page.held_back
        for run_id, settled_at in list(self._pending_ends.items()):
            if settled_at <= page.horizon:
                del self._pending_ends[run_id]
                for sub in self._by_run.get(run_id, ()):
                    sub.end_run()

    def _interested(self, item: HubEvent) -> list[Subscription]:
        candidates = itertools.chain(self._by_run.get(item.event.run_id, ()), self._all_runs)
        return [sub for sub in candidates if sub.wants(item)]

    async def _check_tokens(self) -> None:
        token_ids = frozenset(s.token_id for s in self.subscribers if s.token_id is not None)
        if self.revoked_tokens is None or not token_ids:
            return
        try:
            revoked = await self.revoked_tokens(token_ids)
        except Exception as exc:
            log.warning("event hub could not check stream tokens (%s)", exc)
            return
        for sub in list(self.subscribers):
            if sub.token_id in revoked and not sub.revoked:
                sub.revoke()
