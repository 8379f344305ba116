"""Trials as queue jobs, in-process: no trial stays unfinished after its job ended."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text

import app.pipeline.trial_job as trial_job
from app.events import names
from app.events.publish import RunEvents
from app.pipeline.job import execute_run_job
from app.pipeline.trial_job import execute_trial_job
from app.runtime import Runtime
from tests.pipeline.conftest import TINY_SPEC, ResourcesFactory, insert_run


async def rows(resources: Runtime, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with resources.sessions() as session:
        return [tuple(r) for r in (await session.execute(text(sql), params)).all()]


async def trial_jobs(resources: Runtime, run_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return await rows(
        resources,
        "SELECT t.number, t.status, j.status FROM trials t "
        "JOIN procrastinate_jobs j ON j.id = t.job_id WHERE t.run_id = :r ORDER BY 1",
        r=run_id,
    )


async def advances(resources: Runtime, run_id: uuid.UUID) -> int:
    found = await rows(
        resources,
        "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'cerebros.run_nas' "
        "AND status = 'todo' AND queueing_lock = :lock",
        lock=f"cerebros-advance:{run_id}",
    )
    return int(found[0][0])


async def test_the_run_job_queues_trials_and_ends_while_they_wait(
    make_resources: ResourcesFactory,
) -> None:
    resources = make_resources()
    run_id = await insert_run(resources.sessions, TINY_SPEC)
    async with resources.queue.open_async():
        await execute_run_job(resources, run_id, trials_via_queue=True)
        # One trial at a time here (no live worker: one), queued with its job.
        assert await trial_jobs(resources, run_id) == [(1, "queued", "todo")]
        status = await rows(resources, "SELECT status FROM runs WHERE id = :r", r=run_id)
        assert status == [("running",)]

        # The trial's job ends without recording it (a job cancelled by hand, a bug): the
        # next advance ends the trial failed instead of waiting for it forever.
        async with resources.sessions.begin() as session:
            await session.execute(
                text(
                    "UPDATE procrastinate_jobs SET status = 'failed' WHERE id = "
                    "(SELECT job_id FROM trials WHERE run_id = :r AND number = 1)"
                ),
                {"r": run_id},
            )
        await execute_run_job(resources, run_id, trials_via_queue=True)
        ended = await rows(
            resources,
            "SELECT number, status, error FROM trials WHERE run_id = :r ORDER BY 1",
            r=run_id,
        )
        assert ended[0][:2] == (1, "failed") and "queue job ended" in ended[0][2]
        assert ended[1][:2] == (2, "queued")


async def test_a_trial_job_that_fails_outside_training_ends_its_trial(
    make_resources: ResourcesFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = make_resources()
    run_id = await insert_run(resources.sessions, TINY_SPEC)

    async def broken(*args: object) -> None:
        raise RuntimeError("the dataset store is broken")

    async with resources.queue.open_async():
        await execute_run_job(resources, run_id, trials_via_queue=True)
        monkeypatch.setattr(trial_job, "run_dataset", broken)
        with pytest.raises(RuntimeError):
            await execute_trial_job(resources, run_id, 1, final_attempt=False)
        status = await rows(
            resources, "SELECT status, error FROM trials WHERE run_id = :r AND number = 1", r=run_id
        )
        assert status[0][0] == "failed" and "dataset store is broken" in status[0][1]
        assert await advances(resources, run_id) == 1  # the run goes on


async def test_a_trial_end_queues_the_next_trial_itself(make_resources: ResourcesFactory) -> None:
    """No advance job between two trials: the end queues the next one in its own commit;
    only the last end, with nothing left to queue, hands over to the run's job."""
    resources = make_resources()
    spec = {**TINY_SPEC, "budget": {"max_trials": 3}}
    run_id = await insert_run(resources.sessions, spec)
    async with resources.queue.open_async():
        await execute_run_job(resources, run_id, trials_via_queue=True)
        assert await trial_jobs(resources, run_id) == [(1, "queued", "todo")]

        await execute_trial_job(resources, run_id, 1)
        assert await advances(resources, run_id) == 0
        assert [t[:2] for t in await trial_jobs(resources, run_id)] == [
            (1, "completed"),
            (2, "queued"),
        ]
        await execute_trial_job(resources, run_id, 2)
        assert await advances(resources, run_id) == 0
        await execute_trial_job(resources, run_id, 3)
        assert await advances(resources, run_id) == 1  # the search is done: the run finishes it

        await execute_run_job(resources, run_id, trials_via_queue=True)
        status = await rows(resources, "SELECT status FROM runs WHERE id = :r", r=run_id)
        assert status == [("succeeded",)]
        numbers = await rows(
            resources, "SELECT number, status FROM trials WHERE run_id = :r ORDER BY 1", r=run_id
        )
        assert numbers == [(1, "completed"), (2, "completed"), (3, "completed")]


async def test_a_trial_end_whose_planning_fails_defers_the_advance(
    make_resources: ResourcesFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning in the end is an optimisation: when it fails, the trial's end still commits
    and the run's advance job is deferred, as before."""
    resources = make_resources()
    run_id = await insert_run(resources.sessions, TINY_SPEC)

    def broken(*args: object) -> None:
        raise RuntimeError("the strategy is broken")

    async with resources.queue.open_async():
        await execute_run_job(resources, run_id, trials_via_queue=True)
        monkeypatch.setattr(trial_job, "load_setup", broken)
        await execute_trial_job(resources, run_id, 1)
        assert [t[:2] for t in await trial_jobs(resources, run_id)] == [(1, "completed")]
        assert await advances(resources, run_id) == 1


async def test_a_trial_has_one_durable_commit_its_end(
    make_resources: ResourcesFactory, database_url: str
) -> None:
    """The claim writes no event (trial.started is a live notification) and its commit does
    not wait for the WAL flush; the end's does, with the trial's only durable event."""
    resources = make_resources()
    run_id = await insert_run(resources.sessions, TINY_SPEC)
    listener = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    await listener.execute("LISTEN cerebros_events")
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    async with resources.queue.open_async():
        await execute_run_job(resources, run_id, trials_via_queue=True)
        event.listen(resources.engine.sync_engine, "before_cursor_execute", seen)
        try:
            claim = await trial_job._claim(
                resources, run_id, 1, RunEvents(resources.sessions, run_id), via_queue=True
            )
        finally:
            event.remove(resources.engine.sync_engine, "before_cursor_execute", seen)
        assert claim is not None
        assert "SET LOCAL synchronous_commit TO off" in statements
        stored = await rows(
            resources,
            "SELECT name FROM run_events WHERE run_id = :r AND name LIKE :n",
            r=run_id,
            n="cerebros.nas.trial.%",
        )
        assert stored == []
        assert await trial_jobs(resources, run_id) == [(1, "running", "todo")]
        live = []
        async for note in listener.notifies(timeout=1.0):
            data = json.loads(note.payload)
            if data["run_id"] == str(run_id) and data["name"] == names.TRIAL_STARTED:
                live.append(data)
        await listener.close()
        assert len(live) == 1 and live[0]["live"] is True and live[0]["payload"]["trial"] == 1


async def test_the_planner_reads_trials_without_their_epoch_history(
    make_resources: ResourcesFactory,
) -> None:
    """Every trial's end plans: its read of the run's trials leaves the histories out."""
    from app.pipeline.coordinator import view_of_fields
    from app.runs import trials

    resources = make_resources()
    run_id = await insert_run(resources.sessions, TINY_SPEC)
    async with resources.queue.open_async():
        await execute_run_job(resources, run_id, trials_via_queue=True)
        await execute_trial_job(resources, run_id, 1)
    async with resources.sessions() as session:
        full = await trials.list_trials(session, run_id)
        light = await trials.planner_rows(session, run_id)
    assert full[0].record is not None and len(full[0].record["history"]) == 2
    assert light[0].record is not None and "history" not in light[0].record
    view = view_of_fields(**light[0]._mapping)
    assert view.status == "completed" and view.score == full[0].record["score"]
    assert [r.number for r in light] == [r.number for r in full] == [1, 2]
