"""All reads and writes of the runs table (and trial counts for progress)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import BigInteger, func, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import FINAL_STATUSES, Run, RunEvent, RunStatus, Trial, Xid8
from app.errors import InvalidInput


async def get_run(session: AsyncSession, run_id: uuid.UUID, owner: str | None = None) -> Run | None:
    """The run, or None when absent or owned by someone else (owner=None: any owner)."""
    stmt = select(Run).where(Run.id == run_id)
    if owner is not None:
        stmt = stmt.where(Run.owner == owner)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_run_for_update(session: AsyncSession, run_id: uuid.UUID) -> Run | None:
    stmt = select(Run).where(Run.id == run_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def find_by_idempotency_key(session: AsyncSession, owner: str, key: str) -> Run | None:
    stmt = select(Run).where(Run.owner == owner, Run.idempotency_key == key)
    return (await session.execute(stmt)).scalar_one_or_none()


async def lock_owner(session: AsyncSession, owner: str) -> None:
    """Take the owner's transaction-scoped advisory lock (serializes their submissions)."""
    key = func.hashtextextended(literal("cerebros.runs.owner:") + owner, 0)
    await session.execute(select(func.pg_advisory_xact_lock(key)))


async def count_active_runs(session: AsyncSession, owner: str) -> int:
    """The owner's queued + running runs."""
    stmt = select(func.count()).where(
        Run.owner == owner, Run.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value])
    )
    return int((await session.execute(stmt)).scalar_one())


def encode_cursor(run: Run) -> str:
    raw = f"{run.created_at.isoformat()}|{run.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, run_id = base64.urlsafe_b64decode(padded).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(run_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this API returned", field="cursor") from exc


async def list_runs(
    session: AsyncSession,
    *,
    owner: str | None,
    status: RunStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Run], str | None]:
    """Newest first; keyset pagination on (created_at, id) so pages never skip or repeat."""
    stmt = select(Run).order_by(Run.created_at.desc(), Run.id.desc()).limit(limit + 1)
    if owner is not None:
        stmt = stmt.where(Run.owner == owner)
    if status is not None:
        stmt = stmt.where(Run.status == status.value)
    if cursor:
        created, run_id = decode_cursor(cursor)
        stmt = stmt.where(tuple_(Run.created_at, Run.id) < tuple_(created, run_id))
    runs = list((await session.execute(stmt)).scalars())
    next_cursor = encode_cursor(runs[limit - 1]) if len(runs) > limit else None
    return runs[:limit], next_cursor


async def mark_running(session: AsyncSession, run_id: uuid.UUID) -> Run | None:
    """Move a queued (or retried, still running) run to running; None if it is final."""
    stmt = (
        update(Run)
        .where(Run.id == run_id, Run.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]))
        .values(
            status=RunStatus.RUNNING.value,
            started_at=func.coalesce(Run.started_at, func.clock_timestamp()),
        )
        .returning(Run)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def claim_run(session: AsyncSession, run_id: uuid.UUID) -> Run | None:
    """The run for a job about to execute it: moved to running unless it is final already
    (then returned as it is); None when it does not exist."""
    run = await mark_running(session, run_id)
    return run if run is not None else await get_run(session, run_id)


async def set_current_step(session: AsyncSession, run_id: uuid.UUID, step: str | None) -> None:
    await session.execute(update(Run).where(Run.id == run_id).values(current_step=step))


async def store_result(session: AsyncSession, run_id: uuid.UUID, result: dict[str, Any]) -> None:
    await session.execute(update(Run).where(Run.id == run_id).values(result=result))


async def finish_run(
    session: AsyncSession,
    run_id: uuid.UUID,
    status: RunStatus,
    *,
    error: dict[str, Any] | None = None,
) -> bool:
    """Set a final status once; a run already final is left as it is (returns False).

    The result, if any, is already stored (`store_result`, the saga's last step).
    """
    assert status in FINAL_STATUSES
    stmt = (
        update(Run)
        .where(Run.id == run_id, Run.status.not_in([s.value for s in FINAL_STATUSES]))
        .values(status=status.value, error=error, finished_at=func.clock_timestamp())
    )
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


# --- Read queries for progress, trials and event streams -------------------------------------

FINISHED_TRIAL_STATUSES = ("completed", "pruned", "failed")


async def trial_progress(
    session: AsyncSession, run_id: uuid.UUID
) -> tuple[int, float | None, float | None]:
    """(finished trials, max score, min score) of a run, in one light aggregate."""
    stmt = select(
        func.count().filter(Trial.status.in_(FINISHED_TRIAL_STATUSES)),
        func.max(Trial.score),
        func.min(Trial.score),
    ).where(Trial.run_id == run_id)
    done, best_max, best_min = (await session.execute(stmt)).one()
    return int(done or 0), best_max, best_min


async def list_trials(session: AsyncSession, run_id: uuid.UUID) -> list[Trial]:
    """A run's trials in trial-number order."""
    stmt = select(Trial).where(Trial.run_id == run_id).order_by(Trial.number)
    return list((await session.execute(stmt)).scalars())


async def get_trial(session: AsyncSession, run_id: uuid.UUID, number: int) -> Trial | None:
    stmt = select(Trial).where(Trial.run_id == run_id, Trial.number == number)
    return (await session.execute(stmt)).scalar_one_or_none()


# --- Event stream reads: order (xid, id), see app/events/hub.py --------------------------------


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
    """The last released position (where a stream "from now" starts), and whether later
    events are held back."""
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
    """Which of `run_ids` are final or gone. The snapshot's xmax, read afterwards, bounds
    the transactions that can have written their events."""
    stmt = select(Run.id, Run.status).where(Run.id.in_(list(run_ids)))
    status = {run_id: value for run_id, value in (await session.execute(stmt)).all()}
    final = {r for r in run_ids if r not in status or RunStatus(status[r]).is_final}
    xmax = select(func.pg_snapshot_xmax(func.pg_current_snapshot(), type_=Xid8()))
    settled_at = int((await session.execute(xmax)).scalar_one())
    return FinalRuns(frozenset(final), settled_at)


async def get_run_status(session: AsyncSession, run_id: uuid.UUID) -> str | None:
    return (await session.execute(select(Run.status).where(Run.id == run_id))).scalar_one_or_none()
