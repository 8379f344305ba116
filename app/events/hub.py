"""The LISTEN fan-out: one Postgres connection per process, any number of subscribers.

Stream order is (xid, id): the writing transaction's id, then the event id. Event ids come
from a sequence, so two writers can commit id n after n + 1; a transaction's xid is taken
when it first writes, and an event is *released* only once every transaction with a smaller
xid has ended (`xid < pg_snapshot_xmin`). Released events form a prefix of the order that
only grows, so a position (xid, id) is a cursor nothing can later slip in front of.

The events travel in their notifications (migration 0015): the hub does not read them back.
Postgres queues a transaction's notifications before it commits, and a listener receives
the queue in order, so a snapshot's xmin taken before some notification was queued is a
*barrier*: every transaction below it had ended, its notifications came first. Each event's
notification carries its statement's xmin: when that is the writer's own xid (no older
transaction open, the usual case) the writer's events are released as they arrive. Otherwise
the hub sends a *sync*, `pg_notify(SYNC_CHANNEL, pg_snapshot_xmin(pg_current_snapshot()))`
on a connection of its own (`app.events.channels`), and releases, in (xid, id) order, every
event held below the xmin it brings back; while events wait behind an older transaction
(which may end without notifying) it syncs again every `recheck_s`. A run's end waits for a
barrier past its final transaction. An event too large for a notification (over
`NOTIFY_PAYLOAD_LIMIT`) is notified by id and read back once.

Notifications sent while the hub was not listening (at start, after a lost connection) are
lost: the hub then reads the released events from the database (`reader`, its own
connection), like a stream catching up, until a read finds nothing held back by an older
transaction: from then on everything else commits after the LISTEN, so it is notified.

Live-only notifications (`RunEvents.notify_live`: no row, no id) are fanned out as they
arrive, outside the stream order.

The hub also knows when a followed run is over (the `runs_notify_final` trigger, migration
0005) and whether a stream's token was revoked (checked in one batch every
`auth_recheck_s`): streams need no database query of their own while they are live.

Each event is decoded and encoded once (`HubEvent.sse`, `.chunk`); the fan-out hands the same
object to every interested subscriber and never blocks: a caught-up stream's client gets it
written at once (`Subscription.sink`), others queue it; a subscriber whose queue is full is
emptied and given `RESYNC`, meaning "you missed events: catch up from the database after
your last position".
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db.session import create_engine, create_session_factory
from app.db.urls import libpq_url
from app.events.channels import (
    HUB_APPLICATION_NAME,
    RUNS_CHANNEL,
    HubChannels,
    Notification,
)
from app.events.names import EVENTS_CHANNEL, SYNC_CHANNEL
from app.events.reads import EventStore
from app.events.store import EventPosition
from app.events.subscription import (
    RESYNC,
    HubEvent,
    LiveEvent,
    StreamSlots,
    Subscription,
)

__all__ = ["HUB_APPLICATION_NAME", "RUNS_CHANNEL", "EventHub", "EventStore", "RevokedTokens"]

log = logging.getLogger(__name__)

MAX_HELD: Final = 10_000  # events held in memory behind an older transaction; beyond: re-read
SYNC_TIMEOUT_S: Final = 1.0  # a sync not back by then is taken as lost


# Given the token ids of open streams, the ones revoked (or deleted) since.
RevokedTokens = Callable[[frozenset[str]], Awaitable[frozenset[str]]]


class EventHub:
    """Fan events out from one LISTEN connection to many in-process subscribers.

    `store` serves the streams' own reads (their history; the normal pool), `reader` the
    hub's reads (its own connection in production; `store` when not given).
    """

    def __init__(
        self,
        database_url: str,
        store: EventStore,
        *,
        reader: EventStore | None = None,
        revoked_tokens: RevokedTokens | None = None,
        auth_recheck_s: float = 10.0,
        recheck_s: float = 0.075,
        min_backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        page_size: int = 500,
    ) -> None:
        self.conninfo = libpq_url(database_url)
        self.store = store
        self.reader = reader or store
        self.revoked_tokens = revoked_tokens
        self.auth_recheck_s = auth_recheck_s
        self.recheck_s = recheck_s
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.page_size = page_size
        self.subscribers: set[Subscription] = set()
        self.streams = StreamSlots()
        self.channels = HubChannels(
            self.conninfo,
            on_listen=self._on_listen,
            on_notify=self._on_notify,
            on_lost=self._on_lost,
            on_sync_sent=self._on_sync_sent,
            min_backoff_s=min_backoff_s,
            max_backoff_s=max_backoff_s,
        )
        self.cursor: EventPosition | None = None  # every released event up to it was offered
        self.owned_engine: AsyncEngine | None = None  # the reader's, disposed by `stop`
        self._by_run: dict[uuid.UUID, set[Subscription]] = {}
        self._all_runs: set[Subscription] = set()
        self._pending_ends: dict[uuid.UUID, int] = {}  # run -> horizon that releases its end
        # Notified events not yet released, by position; None: notified by id, to be read.
        self._held: dict[EventPosition, HubEvent | None] = {}
        self._offered_below = 0  # every event with a smaller xid was offered
        self._sync_horizon = 0  # the largest barrier xmin received (syncs and events)
        self._ready_below = 0  # 1 + the largest xid whose notification found no older one open
        self._gap = True  # notifications may have been missed: read until nothing is held back
        self._listens = 0  # LISTEN connections made so far
        self._held_back = False
        self._check_runs = False
        self._inbox: deque[Notification] = deque()
        self._wake = asyncio.Event()
        self._received = 0  # event notifications received so far
        # For each sync of ours in flight: `_received` when it was sent, and the loop time.
        self._sync_sent: deque[tuple[int, float]] = deque()
        self._synced = -1  # `_received` when the last answered sync of ours was sent
        self._next_recheck = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def connected(self) -> asyncio.Event:
        """Set while the LISTEN connection is up."""
        return self.channels.connected

    @property
    def reconnects(self) -> int:
        """Times the LISTEN connection was lost (or failed) and tried again."""
        return self.channels.reconnects

    @classmethod
    def for_database(
        cls,
        database_url: str,
        sessions: async_sessionmaker[AsyncSession],
        *,
        revoked_tokens: RevokedTokens | None = None,
        auth_recheck_s: float = 10.0,
    ) -> EventHub:
        """A hub whose streams read through `sessions`, and the hub through its own connection.

        The hub's reads (after a lost LISTEN connection, an event too large for its
        notification) never wait for the normal pool: a busy pool does not hold live events
        up.
        """
        engine = create_engine(database_url, pool_size=1)
        hub = cls(
            database_url,
            EventStore(sessions),
            reader=EventStore(create_session_factory(engine)),
            revoked_tokens=revoked_tokens,
            auth_recheck_s=auth_recheck_s,
        )
        hub.owned_engine = engine
        return hub

    async def start(self) -> None:
        """Start listening (returns once the first LISTEN and read are done, or after 10 s)."""
        self._tasks = [
            asyncio.create_task(self.channels.listen_forever(), name="event-hub-listen"),
            asyncio.create_task(self.channels.sync_forever(), name="event-hub-sync"),
            asyncio.create_task(self._dispatch_forever(), name="event-hub-dispatch"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self.connected.wait()
                while self.cursor is None:  # subscribers then start from a position
                    await asyncio.sleep(0.01)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self.channels.connected.clear()
        if self.owned_engine is not None:
            await self.owned_engine.dispose()

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

    # --- notifications ---------------------------------------------------------------------

    def _on_listen(self) -> None:
        # Whatever was sent while nobody listened must be read: runs may have ended, events
        # were committed.
        self._listens += 1
        self._gap = True
        self._check_runs = bool(self.channels.reconnects)
        self._wake.set()

    def _on_notify(self, notification: Notification) -> None:
        self._inbox.append(notification)
        self._wake.set()

    def _on_lost(self) -> None:
        self._gap = True

    def _on_sync_sent(self) -> None:
        self._sync_sent.append((self._received, asyncio.get_running_loop().time()))

    def _take_notifications(self) -> None:
        while self._inbox:
            channel, payload, pid = self._inbox.popleft()
            try:
                if channel == EVENTS_CHANNEL:
                    self._on_event(json.loads(payload))
                elif channel == SYNC_CHANNEL:
                    self._on_sync(int(payload), pid)
                elif channel == RUNS_CHANNEL:
                    self._on_run_final(json.loads(payload))
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring malformed %s notification %r", channel, payload[:200])

    def _on_event(self, body: dict[str, Any]) -> None:
        if body.get("live"):
            self._fan_out(LiveEvent.from_notification(body))
            return
        if "xid" not in body:  # a notification without the event (an older trigger)
            self._gap = True
            return
        position = EventPosition(int(body["xid"]), int(body["id"]))
        self._received += 1
        if "xmin" in body:
            # The oldest transaction still open when the event was written: every one below
            # it had ended, so their notifications came before this one (a barrier, like a
            # sync). None open but its own: everything up to this transaction is here.
            xmin = int(body["xmin"])
            self._sync_horizon = max(self._sync_horizon, xmin)
            if xmin >= position.xid:
                self._ready_below = max(self._ready_below, position.xid + 1)
        if self.cursor is not None and position <= self.cursor:
            return  # already offered from a read of the database
        self._held[position] = HubEvent.from_notification(body) if "name" in body else None
        if len(self._held) > MAX_HELD:
            # Held back for long behind an older transaction: the database keeps them.
            self._held.clear()
            self._gap = True

    def _on_sync(self, horizon: int, pid: int) -> None:
        self._sync_horizon = max(self._sync_horizon, horizon)
        if pid == self.channels.sync_pid and self._sync_sent:
            self._synced = self._sync_sent.popleft()[0]

    def _on_run_final(self, body: dict[str, Any]) -> None:
        run_id, xid = uuid.UUID(body["run_id"]), int(body["xid"])
        self._received += 1
        if run_id in self._by_run:
            # Every event of the run was written by its final transaction or before it.
            self.expect_end(run_id, xid + 1)

    # --- dispatch ----------------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_auth_check = loop.time() + self.auth_recheck_s
        backoff = self.min_backoff_s
        retry = False
        while True:
            waiting = retry or self._waiting()
            delay = backoff if retry else self.recheck_s if waiting else None
            until_auth = max(0.0, next_auth_check - loop.time())
            timeout = until_auth if delay is None else min(delay, until_auth)
            if not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            self._take_notifications()
            try:
                await self._advance()
            except Exception as exc:
                if retry:
                    backoff = min(backoff * 2, self.max_backoff_s)
                else:
                    log.warning("event hub could not read events (%s); retrying", exc)
                retry = True
            else:
                retry, backoff = False, self.min_backoff_s
            self._ask_sync(loop.time())
            if loop.time() >= next_auth_check:
                await self._check_tokens()
                next_auth_check = loop.time() + self.auth_recheck_s

    def _waiting(self) -> bool:
        """Whether something waits that time alone may release (an older transaction ending)."""
        return bool(
            self.cursor is None
            or (self._gap and self._held_back)
            or self._held
            or self._pending_ends
        )

    def _ask_sync(self, now: float) -> None:
        """Ask for a sync when held events or run ends wait for one.

        At once when a notification came after the last answered sync was sent; otherwise
        (held back by an older transaction) every `recheck_s`. A sync unanswered for
        `SYNC_TIMEOUT_S` (a lost connection) is forgotten.
        """
        if self._gap or not (self._held or self._pending_ends):
            return
        if self._sync_sent:
            if now - self._sync_sent[0][1] < SYNC_TIMEOUT_S:
                return
            self._sync_sent.clear()
        if self._received > self._synced or now >= self._next_recheck:
            self._next_recheck = now + self.recheck_s
            self.channels.request_sync()

    async def _advance(self) -> None:
        """Offer what is released: from the notifications held, or read from the database."""
        if self._check_runs and self._by_run:
            ended = await self.reader.final_runs(list(self._by_run))
            for run_id in ended.run_ids:
                self.expect_end(run_id, ended.settled_at)
        self._check_runs = False
        if self.cursor is None or self._gap:
            await self._read()
        else:
            await self._release(max(self._sync_horizon, self._ready_below))

    async def _release(self, horizon: int) -> None:
        """Offer, in stream order, the held events of transactions below `horizon`.

        A transaction whose own notification found no older one open is below `horizon`
        from its first notification on: its later events (larger ids) follow in order and
        are offered as they come. The ends of runs wait for a barrier past their final
        transaction (`_sync_horizon`), so that no event of it is still on its way.
        """
        ready = sorted(p for p in self._held if p.xid < horizon)
        missing = [p.id for p in ready if self._held[p] is None]
        if missing:
            for found in await self.reader.events(missing):
                if found.position in self._held:
                    self._held[found.position] = found
        for position in ready:
            item = self._held.pop(position)
            if item is not None:  # None: gone since (its run was deleted)
                self._fan_out(item)
            self.cursor = position
        self._offered_below = max(self._offered_below, self._sync_horizon)
        self._held_back = bool(self._held)
        self._end_runs()

    async def _read(self) -> None:
        """Offer everything released since the cursor, read from the database."""
        listens = self._listens
        if self.cursor is None or not self.subscribers:
            # Nobody to serve (or no cursor yet): only keep the cursor current, cheaply.
            had_cursor = self.cursor is not None
            self.cursor, self._held_back = await self.reader.frontier()
            if not had_cursor:
                for sub in list(self.subscribers):
                    sub.offer(RESYNC)  # subscribed meanwhile, against an older cursor
            self._forget_offered()
            self._leave_gap(self._held_back, listens)
            return
        while True:
            page = await self.reader.page(self.cursor, limit=self.page_size)
            for item in page.events:
                self._fan_out(item)
            if page.events:
                self.cursor = page.events[-1].position
            if not page.full:
                break
        self._held_back = page.held_back
        self._offered_below = max(self._offered_below, page.horizon)
        self._forget_offered()
        self._end_runs()
        # Nothing committed waits behind an older transaction: all that follows commits after
        # the LISTEN, so its notification will come.
        self._leave_gap(page.held_back, listens)

    def _leave_gap(self, held_back: bool, listens: int) -> None:
        """After a read: notifications suffice once nothing committed is held back.

        Only if the read began with the LISTEN that is still in place: everything the read
        did not see commits after it, so its notification comes.
        """
        if not self._gap or held_back:
            return
        if listens == self._listens and self.connected.is_set():
            self._gap = False
            self._synced = -1  # what is held now needs a sync of its own

    def _forget_offered(self) -> None:
        cursor = self.cursor
        if cursor is not None:
            for position in [p for p in self._held if p <= cursor]:
                del self._held[position]

    def _end_runs(self) -> None:
        for run_id, settled_at in list(self._pending_ends.items()):
            if settled_at <= self._offered_below:
                del self._pending_ends[run_id]
                for sub in self._by_run.get(run_id, ()):
                    sub.end_run()

    def _fan_out(self, item: HubEvent | LiveEvent) -> None:
        """Offer `item` to every interested subscriber: the run's own, then all runs' ones."""
        if isinstance(item, HubEvent):
            run_id, name = item.event.run_id, item.event.name
        else:
            run_id, name = item.run_id, item.name
        owner = item.owner
        for sub in itertools.chain(self._by_run.get(run_id, ()), self._all_runs):
            if sub.takes_all or sub.accepts(owner, name):  # the run matches by construction
                sub.offer(item)

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
