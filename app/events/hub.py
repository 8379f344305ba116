"""The LISTEN fan-out: one Postgres connection per process, any number of subscribers.

`EventHub` holds one autocommit psycopg connection that runs `LISTEN cerebros_events`. Each
notification (`{id, run_id, name}` from the run_events trigger) is matched against the
subscriptions; when at least one wants it, the hub loads the full row once through the normal
connection pool and hands it to every interested subscriber's bounded queue.

Subscribers never block the hub: one whose queue is full is emptied and given a `RESYNC`
marker, meaning "you missed events: catch up from the database after your last id". The same
marker goes to everyone after the LISTEN connection was lost and re-established, because
notifications sent while it was down are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import FINAL_STATUSES
from app.db.urls import libpq_url
from app.events.names import EVENTS_CHANNEL, RUN_CANCELLED, TERMINAL_EVENTS
from app.events.patterns import compile_pattern
from app.runs import repository
from app.schemas.runs import EventOut

log = logging.getLogger(__name__)

HUB_APPLICATION_NAME: Final = "cerebros-event-hub"


class Resync:
    """Marker put in a subscriber's queue: events may have been missed, re-read the database."""

    def __repr__(self) -> str:
        return "RESYNC"


RESYNC: Final = Resync()


@dataclass(frozen=True)
class Notice:
    """What the NOTIFY payload says about a new event."""

    id: int
    run_id: uuid.UUID
    name: str

    @classmethod
    def parse(cls, payload: str) -> Notice:
        data = json.loads(payload)
        return cls(id=int(data["id"]), run_id=uuid.UUID(data["run_id"]), name=str(data["name"]))


@dataclass(frozen=True)
class HubEvent:
    """A full event as subscribers receive it, with the owner of its run."""

    event: EventOut
    owner: str


@dataclass(eq=False)
class Subscription:
    """One subscriber: its filter and its bounded queue. Iterate it to receive items.

    `pattern` filters event names (glob; None: all), `run_id` one run, `owner` one owner's
    runs (None: any). Items are `HubEvent`s in id order, or `RESYNC`.
    """

    pattern: str | None = None
    run_id: uuid.UUID | None = None
    owner: str | None = None
    max_queue: int = 1000
    queue: asyncio.Queue[HubEvent | Resync] = field(init=False)
    overflows: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.max_queue)
        if self.pattern is not None:
            compile_pattern(self.pattern)  # ValueError now, not at the first event

    def wants(self, notice: Notice) -> bool:
        if self.run_id is not None and notice.run_id != self.run_id:
            return False
        return self.pattern is None or compile_pattern(self.pattern).match(notice.name) is not None

    def offer(self, item: HubEvent | Resync) -> None:
        """Queue `item` without ever waiting; on overflow, drop the backlog and ask to resync."""
        if isinstance(item, HubEvent) and self.owner is not None and item.owner != self.owner:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflows += 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)

    async def get(self, timeout: float | None = None) -> HubEvent | Resync | None:
        """The next item, or None after `timeout` seconds without one."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    def __aiter__(self) -> AsyncIterator[HubEvent | Resync]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[HubEvent | Resync]:
        while True:
            yield await self.queue.get()


EventLoader = Callable[[list[int]], Awaitable[list[HubEvent]]]


def database_loader(sessions: async_sessionmaker[AsyncSession]) -> EventLoader:
    """Load events by id through the normal pool (one short query per batch)."""

    async def load(ids: list[int]) -> list[HubEvent]:
        async with sessions() as session:
            rows = await repository.events_by_ids(session, ids)
        return [
            HubEvent(EventOut.model_validate(event, from_attributes=True), owner)
            for event, owner in rows
        ]

    return load


class EventHub:
    """Fan events out from one LISTEN connection to many in-process subscribers."""

    def __init__(
        self,
        database_url: str,
        load_events: EventLoader,
        *,
        min_backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        batch_size: int = 500,
    ) -> None:
        self.conninfo = libpq_url(database_url)
        self.load_events = load_events
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.batch_size = batch_size
        self.subscribers: set[Subscription] = set()
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._notices: asyncio.Queue[Notice] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def for_database(
        cls, database_url: str, sessions: async_sessionmaker[AsyncSession]
    ) -> EventHub:
        """A hub that loads events through `sessions` (the process's normal pool)."""
        return cls(database_url, database_loader(sessions))

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
        max_queue: int = 1000,
    ) -> AsyncIterator[Subscription]:
        """Receive matching events from now on, until the block exits.

        Subscribe *before* reading history from the database, then skip ids already seen:
        that way nothing committed in between is lost.
        """
        sub = Subscription(pattern=pattern, run_id=run_id, owner=owner, max_queue=max_queue)
        self.subscribers.add(sub)
        try:
            yield sub
        finally:
            self.subscribers.discard(sub)

    # --- internals -------------------------------------------------------------------------

    async def _listen_forever(self) -> None:
        backoff = self.min_backoff_s
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name=HUB_APPLICATION_NAME
                ) as conn:
                    await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    if self.reconnects:
                        # Notifications sent while we were away are lost: everyone re-reads.
                        self._broadcast(RESYNC)
                    self.connected.set()
                    backoff = self.min_backoff_s
                    async for notify in conn.notifies():
                        self._on_notify(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event hub connection lost (%s); retrying in %.1fs", exc, backoff)
            self.connected.clear()
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)

    def _on_notify(self, payload: str) -> None:
        try:
            notice = Notice.parse(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed event notification %r", payload)
            return
        self._notices.put_nowait(notice)

    async def _dispatch_forever(self) -> None:
        while True:
            batch = [await self._notices.get()]
            while len(batch) < self.batch_size and not self._notices.empty():
                batch.append(self._notices.get_nowait())
            await self._dispatch(batch)

    async def _dispatch(self, batch: list[Notice]) -> None:
        interested: dict[int, list[Subscription]] = {}
        for notice in batch:
            subs = [s for s in self.subscribers if s.wants(notice)]
            if subs:
                interested[notice.id] = subs
        if not interested:
            return
        try:
            events = await self.load_events(sorted(interested))
        except Exception as exc:
            log.warning("event hub could not load %d events (%s)", len(interested), exc)
            for sub in {s for subs in interested.values() for s in subs}:
                sub.offer(RESYNC)
            return
        for item in events:
            for sub in interested.get(item.event.id, ()):
                if sub in self.subscribers:
                    sub.offer(item)

    def _broadcast(self, item: Resync) -> None:
        for sub in list(self.subscribers):
            sub.offer(item)


class _Follower:
    """State of one `follow_events` call: the last id sent and whether the end was seen."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        run_id: uuid.UUID | None,
        owner: str | None,
        pattern: str | None,
        after: int,
    ) -> None:
        self.sessions = sessions
        self.run_id = run_id
        self.owner = owner
        self.pattern = pattern
        self.last = after
        self.ended = False

    def wanted(self, event: EventOut) -> bool:
        return self.pattern is None or compile_pattern(self.pattern).match(event.name) is not None

    def accept(self, event: EventOut) -> bool:
        """Advance past `event`; True when it should be sent."""
        if event.id <= self.last:
            return False  # already sent (history and live overlap)
        self.last = event.id
        if self.run_id is not None and event.name in TERMINAL_EVENTS:
            self.ended = True
        return self.wanted(event)

    async def run_is_final(self) -> bool:
        if self.run_id is None:
            return False
        async with self.sessions() as session:
            status = await repository.get_run_status(session, self.run_id)
        return status is None or status in FINAL_STATUSES

    async def catch_up(self, page: int = 1000) -> AsyncIterator[EventOut]:
        """Everything committed after `last`, from the database, page by page."""
        while True:
            async with self.sessions() as session:
                rows = await repository.events_after(
                    session, after=self.last, limit=page, run_id=self.run_id, owner=self.owner
                )
            for row in rows:
                event = EventOut.model_validate(row, from_attributes=True)
                if self.accept(event):
                    yield event
            if len(rows) < page:
                return


async def follow_events(
    hub: EventHub,
    sessions: async_sessionmaker[AsyncSession],
    *,
    run_id: uuid.UUID | None = None,
    owner: str | None = None,
    pattern: str | None = None,
    after: int | None = None,
    idle_check_s: float = 10.0,
    settle_s: float = 0.5,
) -> AsyncIterator[EventOut]:
    """Events after `after` (history from the database), then live ones, in id order.

    With `run_id`: the whole history when `after` is None, and the iteration ends once the
    run is over: its row is final and everything committed was sent. A run that ends while
    followed is given `settle_s` of quiet for the pipeline's trailing step events (the run's
    terminal event is published a step before the row becomes final). Without `run_id`:
    every run's events (optionally one owner's), from now on unless `after` is given; it
    never ends by itself.
    """
    # Run streams filter names here (they must see the terminal event whatever the pattern).
    hub_pattern = pattern if run_id is None else None
    async with hub.subscribe(hub_pattern, run_id=run_id, owner=owner) as sub:
        if after is None and run_id is None:
            async with sessions() as session:
                after = await repository.last_event_id(session)
        follower = _Follower(sessions, run_id, owner, pattern, after or 0)
        first = True
        while True:
            # A final row means the run is over: read what is committed, then stop.
            final = await follower.run_is_final()
            async for event in follower.catch_up():
                yield event
            if final and first:
                return
            first = False
            wait = settle_s if final or follower.ended else idle_check_s
            item = await _next_live(sub, follower, wait)
            if item is None and final:
                return  # quiet after the end: nothing trails any more
            while isinstance(item, HubEvent):
                if follower.accept(item.event):
                    yield item.event
                if run_id is not None and (follower.ended or item.event.name == RUN_CANCELLED):
                    break  # perhaps the end of the run: check the row
                item = await _next_live(sub, follower, wait)


async def _next_live(
    sub: Subscription, follower: _Follower, idle_check_s: float
) -> HubEvent | Resync | None:
    """Next live item; None after a quiet spell (run streams then re-check the run)."""
    while True:
        item = await sub.get(timeout=idle_check_s)
        if item is not None or follower.run_id is not None:
            return item
