"""The NAS run saga in-process: success, fault at every step, disabled engine."""

from __future__ import annotations

import asyncio
import json
import uuid

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events import names
from app.events.patterns import matches
from app.pipeline.job import RunFailed, execute_run_job
from app.pipeline.run_saga import STEP_NAMES
from app.saga.models import SagaStepRow
from tests.pipeline.conftest import (
    TINY_SPEC,
    ResourcesFactory,
    event_names,
    events,
    insert_run,
    load_run,
    stored_artifacts,
)

pytestmark = pytest.mark.slow


async def step_states(
    resources_sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID
) -> dict[str, str]:
    async with resources_sessions() as session:
        rows = await session.execute(
            select(SagaStepRow.name, SagaStepRow.state).where(SagaStepRow.saga_id == str(run_id))
        )
    return dict(rows.all())


async def test_saga_runs_synchronously_to_success(
    make_resources: ResourcesFactory, database_url: str
) -> None:
    resources = make_resources()
    run_id = await insert_run(resources.sessions)

    # Subscribe (LISTEN) before the run, as the API's stream does.
    listener = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    await listener.execute("LISTEN cerebros_events")
    await execute_run_job(resources, run_id)

    run = await load_run(resources.sessions, run_id)
    assert run.status == "succeeded", run.error
    assert run.result is not None
    assert run.result["trials_completed"] == TINY_SPEC["budget"]["max_trials"]
    assert 0.0 <= run.result["best_score"] <= 1.0
    assert run.finished_at is not None and run.started_at is not None
    assert run.result["artifacts"]["best_model"] in await stored_artifacts(
        resources.sessions, run_id
    )

    assert await step_states(resources.sessions, run_id) == dict.fromkeys(STEP_NAMES, "succeeded")
    emitted = await event_names(resources.sessions, run_id)
    assert emitted[0] == names.STEP_STARTED
    run_level = [n for n in emitted if matches("cerebros.nas.run.*", n)]
    assert run_level == [names.RUN_STARTED, names.RUN_COMPLETED]
    assert emitted.count(names.TRIAL_COMPLETED) == 2
    # Epochs are live notifications only; their metrics are durable in the trial's history.
    assert await events(resources.sessions, run_id, names.TRIAL_EPOCH) == []

    # The same events reached the LISTEN connection, and a pattern selects the run's ones.
    notified: list[str] = []
    gen = listener.notifies(timeout=1.0)
    async for note in gen:
        data = json.loads(note.payload)
        if data["run_id"] == str(run_id):
            notified.append(data["name"])
    await listener.close()
    # Live-only: each trial's start and epochs (no row, no id); everything else is durable.
    live_only = {names.TRIAL_STARTED, names.TRIAL_EPOCH}
    assert names.TRIAL_STARTED not in emitted
    assert notified.count(names.TRIAL_STARTED) == 2
    assert notified.count(names.TRIAL_EPOCH) == 2 * TINY_SPEC["parameters"]["epochs"]
    assert [n for n in notified if n not in live_only] == emitted
    assert [n for n in notified if matches("cerebros.nas.run.*", n)] == run_level


@pytest.mark.parametrize(
    "failing_step",
    ["publish_start_event", "execute_nas_run", "process_results", "publish_complete_event"],
)
async def test_fault_at_step_undoes_the_completed_steps_in_reverse(
    make_resources: ResourcesFactory, failing_step: str
) -> None:
    resources = make_resources(CEREBROS_FAULT_STEPS=failing_step)
    run_id = await insert_run(resources.sessions)

    with pytest.raises(RunFailed):
        await execute_run_job(resources, run_id)

    run = await load_run(resources.sessions, run_id)
    assert run.status == "failed"
    assert run.error is not None and run.error["step"] == failing_step
    assert run.error["type"] == "InjectedFault"

    position = STEP_NAMES.index(failing_step)
    completed = STEP_NAMES[:position]
    states = await step_states(resources.sessions, run_id)
    # A step with a compensation is 'compensated' (its own partial work cleaned up).
    compensating = {"publish_start_event", "execute_nas_run"}
    expected = "compensated" if failing_step in compensating else "failed"
    assert states[failing_step] == expected
    undoable = {"publish_start_event", "execute_nas_run"}
    for step in completed:
        assert states[step] == ("undone" if step in undoable else "succeeded"), step
    assert all(states[step] == "pending" for step in STEP_NAMES[position + 1 :])
    undo_order = [u["step"] for u in run.error["undo"]]
    assert undo_order == list(reversed(completed))

    cancelled = await events(resources.sessions, run_id, names.RUN_CANCELLED)
    assert len(cancelled) == (1 if "publish_start_event" in completed else 0)
    if cancelled:
        assert failing_step in cancelled[0].payload["reason"]
    assert len(await events(resources.sessions, run_id, names.RUN_FAILED)) == 1
    assert await events(resources.sessions, run_id, names.RUN_COMPLETED) == []
    assert not (resources.settings.resolved_artifacts_dir / str(run_id)).exists()
    assert not await stored_artifacts(resources.sessions, run_id)


async def test_disabled_engine_fails_the_run_with_a_clear_reason(
    make_resources: ResourcesFactory,
) -> None:
    resources = make_resources(CEREBROS_ENGINE_ENABLED=False)
    run_id = await insert_run(resources.sessions)
    with pytest.raises(RunFailed):
        await execute_run_job(resources, run_id)
    run = await load_run(resources.sessions, run_id)
    assert run.status == "failed"
    assert run.error is not None and run.error["step"] == "check_enabled"
    assert "disabled" in run.error["message"]
    assert names.RUN_STARTED not in await event_names(resources.sessions, run_id)


async def test_a_final_run_is_not_run_again(make_resources: ResourcesFactory) -> None:
    resources = make_resources(CEREBROS_ENGINE_ENABLED=False)
    run_id = await insert_run(resources.sessions)
    with pytest.raises(RunFailed):
        await execute_run_job(resources, run_id)
    before = await event_names(resources.sessions, run_id)
    await execute_run_job(resources, run_id)  # a duplicate delivery: nothing happens
    assert await event_names(resources.sessions, run_id) == before


async def test_transient_error_interrupts_and_the_retry_resumes(
    make_resources: ResourcesFactory,
) -> None:
    """A database error mid-saga leaves the saga resumable; the rerun skips done steps."""
    from app.queue.retry import TransientError

    resources = make_resources()
    run_id = await insert_run(resources.sessions)
    # Make the trial write fail like a lost connection would, for the first attempt only.
    async with resources.sessions.begin() as session:
        await session.execute(
            text(
                "CREATE OR REPLACE FUNCTION fail_trial_once() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.run_id = '{run_id}' AND NOT EXISTS (SELECT 1 FROM pg_class "
                "WHERE relname = 'trial_fault_done') THEN "
                "CREATE TABLE trial_fault_done(); "
                "RAISE EXCEPTION USING ERRCODE = '08006', MESSAGE = 'connection failure'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        await session.execute(
            text(
                "CREATE TRIGGER fail_trial_once BEFORE INSERT ON trials "
                "FOR EACH ROW EXECUTE FUNCTION fail_trial_once()"
            )
        )
    try:
        with pytest.raises(TransientError):
            await execute_run_job(resources, run_id)
    finally:
        async with resources.sessions.begin() as session:
            await session.execute(text("DROP TRIGGER fail_trial_once ON trials"))
    run = await load_run(resources.sessions, run_id)
    assert run.status == "running"
    states = await step_states(resources.sessions, run_id)
    assert states["publish_start_event"] == "succeeded"

    await asyncio.sleep(0)
    await execute_run_job(resources, run_id)
    run = await load_run(resources.sessions, run_id)
    assert run.status == "succeeded", run.error
    assert len(await events(resources.sessions, run_id, names.RUN_STARTED)) == 1
    assert len(await events(resources.sessions, run_id, names.RUN_CANCELLED)) == 0
