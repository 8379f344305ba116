"""Every path that ends a run ends it right (in-process, real Postgres and Keras).

Faults at every step before and after its effect, an undo that fails once, retries
exhausted, an internal error, a late cancel, a run whose lock another process holds.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from sqlalchemy import select

from app.db.models import Trial
from app.pipeline.job import execute_run_job
from app.pipeline.run_lock import lock_key
from app.pipeline.run_saga import STEP_NAMES
from app.queue.app import create_queue_app
from app.queue.retry import TransientError
from app.runs.cancel import cancel_run
from tests.pipeline.conftest import TINY_SPEC, ResourcesFactory, insert_run, load_run
from tests.pipeline.paths import assert_ended_right, run_events, run_like_the_queue

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("point", ["before", "after"])
@pytest.mark.parametrize("step", STEP_NAMES)
async def test_fault_at_every_step_before_and_after_its_effect(
    make_resources: ResourcesFactory, step: str, point: str
) -> None:
    resources = make_resources(CEREBROS_FAULT_STEPS=f"{step}:{point}")
    run_id = await insert_run(resources.sessions)
    outcomes = await run_like_the_queue(resources, run_id)
    status = await assert_ended_right(resources, run_id)
    if step == "store_result":
        # The pivot is never undone: its failure interrupts, the retry finishes it.
        assert (status, outcomes) == ("succeeded", ["retry", "succeeded"])
    else:
        assert (status, outcomes) == ("failed", ["failed"])
        run = await load_run(resources.sessions, run_id)
        assert run.error is not None and run.error["step"] == step


async def test_an_undo_that_fails_is_retried_on_the_next_attempt(
    make_resources: ResourcesFactory,
) -> None:
    resources = make_resources(
        CEREBROS_FAULT_STEPS="process_results,execute_nas_run:undo,publish_start_event:undo"
    )
    run_id = await insert_run(resources.sessions)
    outcomes = await run_like_the_queue(resources, run_id)
    assert outcomes == ["retry", "failed"]
    assert await assert_ended_right(resources, run_id) == "failed"
    run = await load_run(resources.sessions, run_id)
    assert run.error is not None
    assert {u["step"]: u["status"] for u in run.error["undo"]} == {
        "execute_nas_run": "undone",
        "publish_start_event": "undone",
        "ensure_run_id": "no_undo",
        "check_enabled": "no_undo",
    }


async def test_an_undo_that_keeps_failing_is_recorded_on_the_last_attempt(
    make_resources: ResourcesFactory,
) -> None:
    resources = make_resources(CEREBROS_FAULT_STEPS="process_results,execute_nas_run:undo")
    run_id = await insert_run(resources.sessions)
    assert await run_like_the_queue(resources, run_id, max_attempts=1) == ["failed"]
    run = await load_run(resources.sessions, run_id)
    assert run.status == "failed" and run.error is not None
    statuses = {u["step"]: u["status"] for u in run.error["undo"]}
    assert statuses["execute_nas_run"] == "undo_failed"
    assert statuses["publish_start_event"] == "undone"
    assert await run_events(resources.sessions, run_id) == [
        "cerebros.nas.run.started",
        "cerebros.nas.run.cancelled",
        "cerebros.nas.run.failed",
    ]


@pytest.mark.parametrize("step", ["execute_nas_run", "process_results", "publish_complete_event"])
async def test_retries_exhausted_undo_everything(
    make_resources: ResourcesFactory, step: str
) -> None:
    resources = make_resources(CEREBROS_FAULT_STEPS=f"{step}:transient")
    run_id = await insert_run(resources.sessions)
    assert await run_like_the_queue(resources, run_id) == ["retry", "retry", "failed"]
    assert await assert_ended_right(resources, run_id) == "failed"
    run = await load_run(resources.sessions, run_id)
    assert run.error is not None and run.error["type"] == "transient_exhausted"


@pytest.mark.parametrize("step", ["execute_nas_run", "process_results", "store_result"])
async def test_an_internal_error_undoes_everything(
    make_resources: ResourcesFactory, step: str
) -> None:
    resources = make_resources(CEREBROS_FAULT_STEPS=f"{step}:internal")
    run_id = await insert_run(resources.sessions)
    assert await run_like_the_queue(resources, run_id) == ["failed"]
    assert await assert_ended_right(resources, run_id) == "failed"
    run = await load_run(resources.sessions, run_id)
    assert run.error is not None and run.error["type"] == "internal"


async def test_a_cancel_accepted_after_the_last_epoch_wins(
    make_resources: ResourcesFactory, database_url: str
) -> None:
    """Interrupted after training, cancelled, resumed: the pivot sees the cancel."""
    interrupted = make_resources(CEREBROS_FAULT_STEPS="publish_complete_event:transient")
    run_id = await insert_run(interrupted.sessions)
    with pytest.raises(TransientError):
        await execute_run_job(interrupted, run_id, final_attempt=False)
    queue = create_queue_app(database_url, interrupted.settings)
    run = await cancel_run(interrupted.sessions, queue, run_id, owner=None)
    assert run.status == "running"  # accepted; the worker must honour it
    resources = make_resources()
    assert await run_like_the_queue(resources, run_id) == ["succeeded"]
    assert await assert_ended_right(resources, run_id) == "cancelled"


async def test_cancel_during_training_ends_the_interrupted_trial(
    make_resources: ResourcesFactory, database_url: str
) -> None:
    resources = make_resources()
    # One long trial to cancel (asha's trials would be 1 epoch long).
    spec = {**TINY_SPEC, "parameters": {"strategy": "random", "epochs": 300, "seed": 1}}
    run_id = await insert_run(resources.sessions, spec)
    job = asyncio.create_task(execute_run_job(resources, run_id))
    for _ in range(600):
        async with resources.sessions() as session:
            epochs = (
                await session.execute(select(Trial.epochs_run).where(Trial.run_id == run_id))
            ).scalar()
        if epochs:
            break
        await asyncio.sleep(0.05)
    await cancel_run(
        resources.sessions, create_queue_app(database_url, resources.settings), run_id, owner=None
    )
    await asyncio.wait_for(job, 60)
    assert await assert_ended_right(resources, run_id) == "cancelled"
    async with resources.sessions() as session:
        trials = (await session.execute(select(Trial).where(Trial.run_id == run_id))).scalars()
        ended = [(t.status, t.finished_at is not None) for t in trials]
    assert ("cancelled", True) in ended


async def test_a_locked_run_is_waited_for_not_skipped(
    make_resources: ResourcesFactory, database_url: str
) -> None:
    """Another live process holds the run's lock: the job waits, never returns early."""
    resources = make_resources()
    run_id = await insert_run(resources.sessions)
    holder = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    try:
        await holder.execute("SELECT pg_advisory_lock(%s)", (lock_key(run_id),))
        job = asyncio.create_task(execute_run_job(resources, run_id))
        await asyncio.sleep(3)
        assert not job.done(), "the job returned while another process held the run"
        assert (await load_run(resources.sessions, run_id)).status == "queued"
    finally:
        await holder.close()  # the holder dies: its session lock goes with it
    await asyncio.wait_for(job, 120)
    assert await assert_ended_right(resources, run_id) == "succeeded"


async def test_a_job_for_an_unknown_run_fails(make_resources: ResourcesFactory) -> None:
    assert await run_like_the_queue(make_resources(), uuid.uuid4()) == ["failed"]


async def test_the_parameter_cap_setting_reaches_the_engine(
    make_resources: ResourcesFactory,
) -> None:
    resources = make_resources(CEREBROS_MAX_TRAINABLE_PARAMS=10)
    run_id = await insert_run(resources.sessions)
    assert await run_like_the_queue(resources, run_id) == ["failed"]
    assert await assert_ended_right(resources, run_id) == "failed"
    run = await load_run(resources.sessions, run_id)
    assert run.error is not None and run.error["step"] == "execute_nas_run"
    assert "CEREBROS_MAX_TRAINABLE_PARAMS" in run.error["message"]
