"""Drive a run's job as the queue would, and check that the run ended right."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Trial
from app.events import names
from app.events.patterns import matches
from app.pipeline.job import RunFailed, execute_run_job
from app.queue.retry import TransientError
from app.runtime import Runtime
from app.saga.models import SagaRow, SagaStepRow
from tests.pipeline.conftest import event_names, load_run, stored_artifacts

UNDOABLE = ("publish_start_event", "execute_nas_run")


async def run_like_the_queue(
    resources: Runtime, run_id: uuid.UUID, *, max_attempts: int = 3
) -> list[str]:
    """Attempts until the job stops being retried: 'retry', then 'succeeded' or 'failed'."""
    outcomes: list[str] = []
    for attempt in range(1, max_attempts + 1):
        try:
            await execute_run_job(resources, run_id, final_attempt=attempt == max_attempts)
        except TransientError:
            outcomes.append("retry")
            continue
        except RunFailed:
            outcomes.append("failed")
        else:
            outcomes.append("succeeded")
        break
    return outcomes


async def run_events(sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> list[str]:
    return [n for n in await event_names(sessions, run_id) if matches("cerebros.nas.run.*", n)]


async def assert_ended_right(resources: Runtime, run_id: uuid.UUID) -> str:
    """Every path's contract; returns the run's final status.

    succeeded: started then completed, nothing undone, the model on disk. failed/cancelled:
    never a completed, every completed step with an undo undone (newest first), exactly one
    cancelled when it had started, the terminal event last, no trial left running.
    """
    sessions = resources.sessions
    run = await load_run(sessions, run_id)
    emitted = await run_events(sessions, run_id)
    artifacts = resources.settings.resolved_artifacts_dir / str(run_id)
    async with sessions() as session:
        steps = {
            r.name: r
            for r in (
                await session.execute(select(SagaStepRow).where(SagaStepRow.saga_id == str(run_id)))
            ).scalars()
        }
        saga = await session.get(SagaRow, str(run_id))
        unfinished = (
            await session.execute(
                select(Trial.number).where(
                    Trial.run_id == run_id, Trial.status.in_(("queued", "running"))
                )
            )
        ).all()
    assert unfinished == [], "a trial of an ended run is still running"
    if run.status == "succeeded":
        assert emitted == [names.RUN_STARTED, names.RUN_COMPLETED], emitted
        assert run.result is not None and run.error is None
        assert saga is not None and saga.status == "succeeded"
        assert all(s.state == "succeeded" for s in steps.values())
        assert run.result["artifacts"]["best_model"] in await stored_artifacts(sessions, run_id)
        return run.status
    assert run.status in ("failed", "cancelled"), run.status
    assert names.RUN_COMPLETED not in emitted, emitted
    started = names.RUN_STARTED in emitted
    terminal = names.RUN_CANCELLED if run.status == "cancelled" else names.RUN_FAILED
    expected = [names.RUN_STARTED, names.RUN_CANCELLED] if started else []
    if terminal == names.RUN_FAILED or not started:
        expected.append(terminal)
    assert emitted == expected, emitted
    assert run.result is None
    assert not artifacts.exists(), "artifacts of a failed run were left on disk"
    assert not await stored_artifacts(sessions, run_id), "a failed run's artifacts were kept"
    if saga is not None:
        assert saga.status == "failed"
        for name in UNDOABLE:
            if name in steps and steps[name].seq is not None:
                assert steps[name].state == "undone", (name, steps[name].state)
        done = sorted((s for s in steps.values() if s.seq is not None), key=lambda s: -(s.seq or 0))
        assert run.error is not None
        assert [u["step"] for u in run.error["undo"]] == [s.name for s in done]
    return run.status
