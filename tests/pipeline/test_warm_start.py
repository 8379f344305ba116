"""parameters.warm_start_run_id: an earlier run's trials are the strategy's history."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from app.db.models import Trial
from app.pipeline.job import execute_run_job
from tests.pipeline.conftest import TINY_SPEC, ResourcesFactory, insert_run, load_run


async def fingerprints(resources: Any, run_id: uuid.UUID) -> list[str]:
    async with resources.sessions() as session:
        rows = await session.execute(
            select(Trial.record).where(Trial.run_id == run_id).order_by(Trial.number)
        )
    return [r["fingerprint"] for r in rows.scalars()]


async def test_a_warm_started_run_learns_from_the_earlier_trials(
    make_resources: ResourcesFactory,
) -> None:
    resources = make_resources()
    spec = {**TINY_SPEC, "search_space": {"layers": [1, 2], "neurons": [4, 8, 16]}}
    first = await insert_run(resources.sessions, spec)
    await execute_run_job(resources, first)
    warm = {**spec, "parameters": {**spec["parameters"], "warm_start_run_id": str(first)}}
    second = await insert_run(resources.sessions, warm)
    await execute_run_job(resources, second)
    assert (await load_run(resources.sessions, second)).status == "succeeded"
    before, after = await fingerprints(resources, first), await fingerprints(resources, second)
    # Same seed: without the history it would train the same two architectures again.
    assert len(after) == 2 and set(before).isdisjoint(after)
