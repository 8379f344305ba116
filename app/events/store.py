"""The run_events table: every write and read of it (its one owner).

Writes go in the caller's transaction (the row's trigger NOTIFYs the event on commit, migration
0015); live-only notifications (`notify_live`) are a NOTIFY without a row; `RunEvents`
(`app.events.publish`) is the publisher bound to one run. Stream reads follow the order
(xid, id) that `app/events/hub.py` explains; they read the runs table only to join an
event's owner and to see which runs are final.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import BigInteger, func, literal, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Run, RunEvent, Xid8
from app.events.names import EVENTS_CHANNEL, NOTIFY_PAYLOAD_LIMIT


async def publish_event(
    session: AsyncSession,
    run_id: uuid.UUID,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    correlation_id: str | None = None,
    dedup_key: str | None = None,
) -> int | None:
    """Insert one event; return its id, or None when `dedup_key` was already published.

    `dedup_key` makes publication idempotent: a step or trial retried after a crash
    publishes the same key again and nothing is duplicated.
    """
    stmt = (
        insert(RunEvent)
        .values(
            run_id=run_id,
            name=name,
            payload=payload or {},
            correlation_id=correlation_id or str(run_id),
            dedup_key=dedup_key,
        )
        .on_conflict_do_nothing(constraint="uq_run_events_run_id_dedup_key")
        .returning(RunEvent.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def is_published(session: AsyncSession, run_id: uuid.UUID, dedup_key: str) -> bool:
    """True when the run's event with `dedup_key` exists (was published and committed)."""
    stmt = select(RunEvent.id).where(RunEvent.run_id == run_id, RunEvent.dedup_key == dedup_key)
    return (await session.execute(stmt.limit(1))).first() is not None


class LiveEventTooLarge(ValueError):
    """A live notification that would not fit in one NOTIFY payload."""


# The envelope's own keys and values (run id, owner, timestamp) stay well below this.
_LIVE_ENVELOPE_BYTES: Final = 400

_NOTIFY_LIVE = text(
    "SELECT pg_notify(:channel, json_build_object("
    "'live', true, 'run_id', r.id, 'owner', r.owner, 'name', CAST(:name AS text),"
    " 'payload', CAST(:payload AS jsonb), 'created_at', clock_timestamp())::text)"
    " FROM runs r WHERE r.id = :run_id"
)


async def notify_live(
    session: AsyncSession,
    run_id: uuid.UUID,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    own_transaction: bool = False,
) -> None:
    """Send a live-only notification of the run's (no row, no event id; sent on commit).

    Streams deliver it at once, without an SSE `id:`; it is never replayed. Nothing is sent
    for a run that does not exist. `own_transaction`: the session's transaction holds nothing
    else, so its commit need not wait for the WAL flush.

    Raises:
        LiveEventTooLarge: the name and payload would not fit in one NOTIFY payload.
    """
    body = json.dumps(payload or {}, separators=(",", ":"))
    if len(body.encode()) + len(name.encode()) + _LIVE_ENVELOPE_BYTES > NOTIFY_PAYLOAD_LIMIT:
        raise LiveEventTooLarge(f"live event {name!r} is over {NOTIFY_PAYLOAD_LIMIT} bytes")
    params = {"channel": EVENTS_CHANNEL, "name": name, "payload": body, "run_id": run_id}
    if own_transaction:
        await session.execute(text("SET LOCAL synchronous_commit TO off"))
    await session.execute(_NOTIFY_LIVE, params)


async def list_events(
    session: AsyncSession,
    run_id: uuid.UUID,
    *,
    after: int = 0,
    limit: int = 1000,
) -> list[RunEvent]:
    """A run's events with id > `after`, oldest first (polling clients; not stream order)."""
    stmt = (
        select(RunEvent)
        .where(RunEvent.run_id == run_id, RunEvent.id > after)
        .order_by(RunEvent.id)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def events_by_id(
    session: AsyncSession, event_ids: Collection[int]
) -> list[tuple[RunEvent, str]]:
    """The events with these ids that still exist, each with its run's owner, in id order.

    The hub reads an event this way when its notification was too large to carry it.
    """
    stmt = (
        select(RunEvent, Run.owner)
        .join(Run, Run.id == RunEvent.run_id)
        .where(RunEvent.id.in_(list(event_ids)))
        .order_by(RunEvent.id)
    )
    return [(event, owner) for event, owner in (await session.execute(stmt)).all()]


# --- Stream reads: order (xid, id), see app/events/hub.py --------------------------------------


@dataclass(frozen=True, order=True)
class EventPosition:
    """A place in the stream order: (xid of the writing transaction, event id)."""

    xid: int
    id: int


STREAM_START: Final = EventPosition(0, 0)


@dataclass(frozen=True)
class EventPage:
    """Released events after a position, oldest first, each with its run's owner.

    An event is released once every transaction with a smaller xid has ended (`xid <
    horizon`): nothing can appear before it any more. `held_back` says committed events
    wait behind an older transaction still open (it may end without notifying anyone).
    """

    rows: list[tuple[RunEvent, str]]
    horizon: int
    full: bool
    held_back: bool

    @property
    def last(self) -> EventPosition | None:
        return EventPosition(self.rows[-1][0].xid, self.rows[-1][0].id) if self.rows else None


def _xid(value: int) -> Any:
    return literal(value, Xid8())


def _after(position: EventPosition) -> Any:
    return tuple_(RunEvent.xid, RunEvent.id) > tuple_(
        _xid(position.xid), literal(position.id, BigInteger())
    )


async def event_horizon(session: AsyncSession) -> int:
    """The snapshot's xmin: every transaction with a smaller xid has ended."""
    stmt = select(func.pg_snapshot_xmin(func.pg_current_snapshot(), type_=Xid8()))
    return int((await session.execute(stmt)).scalar_one())


async def released_events(
    session: AsyncSession,
    *,
    after: EventPosition,
    limit: int,
    run_id: uuid.UUID | None = None,
    owner: str | None = None,
) -> EventPage:
    """Released events after `after` in stream order, of one run or of all (an owner's) runs.

    The horizon is read first: rows below it are all committed (or gone), so the later
    page query sees every one of them.
    """
    horizon = await event_horizon(session)
    stmt = (
        select(RunEvent, Run.owner)
        .join(Run, Run.id == RunEvent.run_id)
        .where(_after(after), RunEvent.xid < _xid(horizon))
        .order_by(RunEvent.xid, RunEvent.id)
        .limit(limit)
    )
    if run_id is not None:
        stmt = stmt.where(RunEvent.run_id == run_id)
    if owner is not None:
        stmt = stmt.where(Run.owner == owner)
    rows = [(event, run_owner) for event, run_owner in (await session.execute(stmt)).all()]
    page = EventPage(rows, horizon, full=len(rows) == limit, held_back=False)
    if page.full:
        return page
    waiting = select(RunEvent.id).where(_after(page.last or after), RunEvent.xid >= _xid(horizon))
    if run_id is not None:
        waiting = waiting.where(RunEvent.run_id == run_id)
    held_back = (await session.execute(select(waiting.exists()))).scalar_one()
    return EventPage(rows, horizon, full=False, held_back=bool(held_back))


async def released_frontier(session: AsyncSession) -> tuple[EventPosition, bool]:
    """The last released position, and whether later events are held back.

    The last released position is where a stream "from now" starts.
    """
    horizon = await event_horizon(session)
    stmt = (
        select(RunEvent.xid, RunEvent.id)
        .where(RunEvent.xid < _xid(horizon))
        .order_by(RunEvent.xid.desc(), RunEvent.id.desc())
        .limit(1)
    )
    row = (await session.execute(stmt)).one_or_none()
    position = EventPosition(int(row[0]), int(row[1])) if row else STREAM_START
    waiting = select(RunEvent.id).where(RunEvent.xid >= _xid(horizon))
    held_back = (await session.execute(select(waiting.exists()))).scalar_one()
    return position, bool(held_back)


async def event_position(session: AsyncSession, event_id: int) -> EventPosition:
    """The stream position of an event id (a client's Last-Event-ID).

    An id that is gone (its run was deleted) or never existed is placed after the largest
    event id below it, in that event's transaction.
    """
    stmt = select(RunEvent.xid).where(RunEvent.id <= event_id).order_by(RunEvent.id.desc()).limit(1)
    xid = (await session.execute(stmt)).scalar_one_or_none()
    return EventPosition(int(xid or 0), event_id)


@dataclass(frozen=True)
class FinalRuns:
    """Runs found final (or gone); all their events have xid < `settled_at`."""

    run_ids: frozenset[uuid.UUID]
    settled_at: int


async def final_runs(session: AsyncSession, run_ids: Collection[uuid.UUID]) -> FinalRuns:
    """Which of `run_ids` are final or gone.

    The snapshot's xmax, read afterwards, bounds the transactions that can have written their
    events.
    """
    stmt = select(Run.id, Run.status).where(Run.id.in_(list(run_ids)))
    status = {run_id: value for run_id, value in (await session.execute(stmt)).all()}
    final = {r for r in run_ids if r not in status or status[r].is_final}
    xmax = select(func.pg_snapshot_xmax(func.pg_current_snapshot(), type_=Xid8()))
    settled_at = int((await session.execute(xmax)).scalar_one())
    return FinalRuns(frozenset(final), settled_at)
