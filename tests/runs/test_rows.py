"""The owners of the trials and run_events SQL on a real database: statuses stored as enums,
typed records in and out, one publisher per run."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Run, RunEvent, RunStatus, TrialStatus
from app.events.publish import RunEvents
from app.nas.records import TrialRecord, TrialStart
from app.runs import repository
from app.runs import trials as trial_rows
from app.schemas.runs import RunError

pytestmark = pytest.mark.postgres

Sessions = async_sessionmaker[AsyncSession]


async def new_run(sessions: Sessions) -> uuid.UUID:
    run_id = uuid.uuid4()
    async with sessions.begin() as session:
        session.add(Run(id=run_id, spec={"dataset_id": "iris", "objective": "val_accuracy"}))
    return run_id


def start(number: int) -> TrialStart:
    return TrialStart(number, {"levels": [[{"neurons": 4}]]}, {"learning_rate": 0.1}, 10)


def finished(number: int, status: str, score: float | None) -> TrialRecord:
    return TrialRecord.from_dict(
        {**start(number).to_dict(), "status": status, "score": score, "epochs_run": 1}
    )


async def test_trial_rows_keep_their_status_as_an_enum(session_factory: Sessions) -> None:
    run_id = await new_run(session_factory)
    async with session_factory.begin() as session:
        for number in (1, 2, 3, 4):
            await trial_rows.start_trial(session, run_id, start(number))
        await trial_rows.record_epoch(session, run_id, 1, {"epoch": 1, "val_accuracy": 0.5})
        await trial_rows.finish_trial(session, run_id, finished(1, "completed", 0.5))
        await trial_rows.finish_trial(session, run_id, finished(2, "pruned", 0.25))
        await trial_rows.finish_trial(session, run_id, finished(3, "failed", None))
    async with session_factory.begin() as session:
        assert await trial_rows.cancel_unfinished(session, run_id) == 1  # trial 4
    async with session_factory() as session:
        rows = await trial_rows.list_trials(session, run_id)
        records = await trial_rows.finished_records(session, run_id)
        progress = await trial_rows.trial_progress(session, run_id)
        raw = (
            await session.execute(
                text("SELECT status FROM trials WHERE run_id = :r ORDER BY number"), {"r": run_id}
            )
        ).scalars()
        one = await trial_rows.get_trial(session, run_id, 4)
    statuses = [
        TrialStatus.COMPLETED,
        TrialStatus.PRUNED,
        TrialStatus.FAILED,
        TrialStatus.CANCELLED,
    ]
    assert [t.status for t in rows] == statuses
    assert all(isinstance(t.status, TrialStatus) for t in rows)
    assert list(raw) == [s.value for s in statuses]  # the same VARCHAR values as before
    assert [r.number for r in records] == [1, 2, 3]  # the finished ones, typed
    assert records[0] == finished(1, "completed", 0.5)
    assert progress == (3, 0.5, 0.25)
    assert one is not None and one.finished_at is not None


async def test_a_run_finishes_once_with_its_typed_error(session_factory: Sessions) -> None:
    run_id = await new_run(session_factory)
    error = RunError(type="internal", error="KeyError", message="'x'")
    async with session_factory.begin() as session:
        assert await repository.finish_run(session, run_id, RunStatus.FAILED, error=error)
        assert not await repository.finish_run(session, run_id, RunStatus.CANCELLED)
    async with session_factory() as session:
        run = await repository.get_run(session, run_id)
        status = await repository.get_run_status(session, run_id)
    assert run is not None and run.status is RunStatus.FAILED and status is RunStatus.FAILED
    assert run.error == error.model_dump(mode="json")
    assert RunError.model_validate(run.error) == error


async def test_run_events_publish_once_per_key_alone_or_in_a_transaction(
    session_factory: Sessions,
) -> None:
    run_id = await new_run(session_factory)
    events = RunEvents(session_factory, run_id)
    first = await events.publish("cerebros.nas.test", {"n": 1}, dedup="k")
    assert first is not None
    assert await events.publish("cerebros.nas.test", {"n": 2}, dedup="k") is None
    assert await events.is_published("k") and not await events.is_published("other")
    with pytest.raises(RuntimeError):
        async with session_factory.begin() as session:
            await events.publish("cerebros.nas.test", {"n": 3}, dedup="gone", session=session)
            raise RuntimeError("rolled back with the caller's transaction")
    async with session_factory() as session:
        rows = (await session.execute(select(RunEvent).where(RunEvent.run_id == run_id))).scalars()
        payloads = [(e.payload, e.correlation_id) for e in rows]
    assert payloads == [({"n": 1}, str(run_id))]
