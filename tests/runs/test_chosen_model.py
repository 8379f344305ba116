"""The chosen model in Postgres as trials end, in any order (real database; bytes for models)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Run
from app.nas.artifact_names import ARCHITECTURE, BEST_MODEL, CANDIDATES, candidate_name
from app.nas.records import TrialRecord
from app.nas.spec import NasSpec
from app.runs import artifacts, chosen_model, trials

pytestmark = pytest.mark.postgres

Sessions = async_sessionmaker[AsyncSession]


def iris(**selection: Any) -> NasSpec:
    return NasSpec.model_validate(
        {"dataset_id": "iris", "objective": "val_accuracy", "selection": selection or {}}
    )


async def new_run(sessions: Sessions, spec: NasSpec) -> uuid.UUID:
    run_id = uuid.uuid4()
    async with sessions.begin() as session:
        session.add(Run(id=run_id, spec=spec.model_dump(mode="json")))
    return run_id


def model_of(number: int) -> bytes:
    return f"the model of trial {number}".encode()


async def end(
    sessions: Sessions, run_id: uuid.UUID, spec: NasSpec, number: int, score: float, params: int
) -> None:
    """What a trial's end does: record it completed, then offer its model (one transaction)."""
    record = TrialRecord(
        number=number,
        status="completed",
        architecture={"n": number},
        hyperparameters={},
        params_count=params,
        score=score,
    )
    async with sessions() as session:
        pool = await trials.contenders(session, run_id)
    exported = chosen_model.may_keep(spec, pool, record)
    async with sessions.begin() as session:
        await trials.finish_trial(session, run_id, record)
        if exported:
            await chosen_model.offer(session, run_id, spec, record, model_of(number))


async def state(sessions: Sessions, run_id: uuid.UUID) -> tuple[int | None, set[str]]:
    """(the trial whose model best_model.keras is, the candidate names stored)."""
    async with sessions() as session:
        best = await artifacts.get_artifact(session, run_id, BEST_MODEL)
        doc = await artifacts.get_artifact(session, run_id, ARCHITECTURE)
        names = {a.name for a in await artifacts.list_artifacts(session, run_id)}
    held = None
    if best is not None:
        assert doc is not None
        held = int(best.content.decode().rsplit(" ", 1)[1])
        assert json.loads(doc.content)["trial_number"] == held  # they travel together
    return held, {n for n in names if n.startswith(CANDIDATES + "/")}


async def test_an_earlier_trial_becomes_the_served_model_again(session_factory: Sessions) -> None:
    spec = iris(rule="smallest_within_tolerance", tolerance=0.05)
    run_id = await new_run(session_factory, spec)
    steps = [  # (number, score, params) -> (served trial, trials whose models are kept)
        ((1, 0.90, 100), (1, {1})),
        ((2, 0.85, 50), (2, {1, 2})),
        ((3, 0.88, 500), (2, {1, 2})),  # beaten by 1: never exported
        ((4, 0.92, 900), (1, {1, 4})),  # the best rises: 2 is out, 1 is served again
    ]
    for (number, score, params), (served, kept) in steps:
        await end(session_factory, run_id, spec, number, score, params)
        assert await state(session_factory, run_id) == (served, {candidate_name(n) for n in kept})
    async with session_factory.begin() as session:
        assert await chosen_model.finish(session, run_id, spec) == 1
    assert await state(session_factory, run_id) == (1, set())


async def test_trials_ending_out_of_order(session_factory: Sessions) -> None:
    spec = iris(rule="smallest_within_tolerance", tolerance=0.05)
    run_id = await new_run(session_factory, spec)
    for number, score, params in [(4, 0.92, 900), (2, 0.85, 50), (1, 0.90, 100), (3, 0.88, 5)]:
        await end(session_factory, run_id, spec, number, score, params)
    # 2 ended outside the window of 4's 0.92 (never exported); 1 and 4 may still be chosen.
    assert await state(session_factory, run_id) == (3, {candidate_name(n) for n in (1, 3, 4)})


async def test_under_best_only_the_best_is_stored_and_equal_scores_go_to_the_lower_number(
    session_factory: Sessions,
) -> None:
    spec = iris()
    run_id = await new_run(session_factory, spec)
    await end(session_factory, run_id, spec, 2, 0.90, 100)
    assert await state(session_factory, run_id) == (2, set())
    await end(session_factory, run_id, spec, 3, 0.80, 10)
    assert await state(session_factory, run_id) == (2, set())
    # Trial 1 ends last (another worker) with the same score: the lower number is the choice.
    await end(session_factory, run_id, spec, 1, 0.90, 300)
    assert await state(session_factory, run_id) == (1, set())
    async with session_factory.begin() as session:
        assert await chosen_model.finish(session, run_id, spec) == 1


async def test_copy_artifact(session_factory: Sessions) -> None:
    run_id = await new_run(session_factory, iris())
    async with session_factory.begin() as session:
        assert not await artifacts.copy_artifact(session, run_id, "nothing", BEST_MODEL)
        await artifacts.put_artifact(session, run_id, candidate_name(1), b"one")
        await artifacts.put_artifact(session, run_id, BEST_MODEL, b"older")
        assert await artifacts.copy_artifact(session, run_id, candidate_name(1), BEST_MODEL)
    async with session_factory() as session:
        copied = await artifacts.get_artifact(session, run_id, BEST_MODEL)
        original = await artifacts.artifact_info(session, run_id, candidate_name(1))
    assert copied is not None and original is not None
    assert (copied.content, copied.size, copied.sha256) == (b"one", 3, original.sha256)
