"""The hot reads' JSON, built by Postgres (app/runs/reads.py), is what the response models would
have answered: same fields, values and timestamp text, for every kind of run row."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db.models import RunStatus
from app.events.store import list_events
from app.runs import reads, repository
from app.runs.progress import run_progress
from app.schemas.runs import EventOut, EventPage, RunOut, RunPage

pytestmark = pytest.mark.postgres

Sessions = async_sessionmaker[AsyncSession]
SPEC = {"dataset_id": "iris", "objective": "val_loss", "budget": {"max_trials": 7}}
RESULT = {
    "status": "completed",
    "objective": "val_accuracy",
    "direction": "max",
    "best_score": 0.9,
    "best_architecture": {},
    "trials_completed": 2,
}


async def insert(sessions: Sessions, owner: str, **columns: Any) -> uuid.UUID:
    run_id = uuid.uuid4()
    values = {"spec": json.dumps(SPEC), "status": "queued", **columns}
    names = ", ".join(values)
    marks = ", ".join(f":{k}" for k in values)
    async with sessions.begin() as session:
        await session.execute(
            text(f"INSERT INTO runs (id, owner, {names}) VALUES (:id, :owner, {marks})"),
            {"id": run_id, "owner": owner, **values},
        )
    return run_id


async def add_trials(sessions: Sessions, run_id: uuid.UUID, rows: list[tuple[str, Any]]) -> None:
    async with sessions.begin() as session:
        for number, (status, score) in enumerate(rows):
            await session.execute(
                text(
                    "INSERT INTO trials (run_id, number, status, score, epochs_run, history)"
                    " VALUES (:run, :n, :status, :score, 0, '[]')"
                ),
                {"run": run_id, "n": number, "status": status, "score": score},
            )


async def expected_run(sessions: Sessions, run_id: uuid.UUID) -> dict[str, Any]:
    async with sessions() as session:
        run = await repository.get_run(session, run_id)
        assert run is not None
        out = RunOut.model_validate(run, from_attributes=True)
        out = out.model_copy(update={"progress": await run_progress(session, run)})
    loaded: dict[str, Any] = json.loads(out.model_dump_json())
    return loaded


async def test_a_run_reads_as_its_response_model(
    engine: AsyncEngine, session_factory: Sessions
) -> None:
    owner = f"reads-{uuid.uuid4().hex[:8]}"
    plain = await insert(session_factory, owner)
    trained = await insert(session_factory, owner, status="running", current_step="execute")
    # Every status counts by its name: one the code does not know yet is simply not "done".
    await add_trials(
        session_factory,
        trained,
        [
            ("completed", 0.5),
            ("pruned", 0.25),
            ("failed", None),
            ("running", 0.75),
            ("queued", None),
            ("someday", 0.1),  # a status added after this code (no CHECK on trials.status)
        ],
    )
    # A finished run's error as the ORM stores None in a JSONB column: JSON null, not SQL NULL.
    succeeded = await insert(
        session_factory, owner, status="succeeded", result=json.dumps(RESULT), error="null"
    )
    await add_trials(session_factory, succeeded, [("completed", 0.9), ("completed", 0.8)])
    failed = await insert(
        session_factory,
        owner,
        status="failed",
        error=json.dumps({"type": "X", "message": 'a "quoted" : null'}),  # fields missing
    )
    async with session_factory.begin() as session:  # a whole-second timestamp: no fraction
        await session.execute(
            text("UPDATE runs SET started_at = '2026-01-01 00:00:00+00' WHERE id = :id"),
            {"id": failed},
        )
    for run_id in (plain, trained, succeeded, failed):
        body = await reads.run_json(engine, run_id, owner)
        assert body is not None
        assert json.loads(body) == await expected_run(session_factory, run_id)
        assert await reads.run_json(engine, run_id, "someone-else") is None
        assert await reads.run_json(engine, run_id, None) == body  # an admin's read
    progress = json.loads(await reads.run_json(engine, trained, owner) or b"")["progress"]
    assert progress == {
        "trials_done": 3,
        "trials_total": 7,
        "best_score": 0.1,  # val_loss: lower is better, whatever the trial's status
        "current_step": "execute",
    }


async def test_pages_of_runs_and_events_read_as_their_models(
    engine: AsyncEngine, session_factory: Sessions
) -> None:
    owner = f"pages-{uuid.uuid4().hex[:8]}"
    ids = [await insert(session_factory, owner) for _ in range(5)]
    first = RunPage.model_validate_json(
        await reads.runs_page_json(engine, owner=owner, status=None, limit=3, cursor=None)
    )
    assert first.next_cursor is not None
    rest = RunPage.model_validate_json(
        await reads.runs_page_json(
            engine, owner=owner, status=RunStatus.QUEUED, limit=3, cursor=first.next_cursor
        )
    )
    assert rest.next_cursor is None
    assert [r.id for r in first.items + rest.items] == ids[::-1]  # newest first, no gap
    async with session_factory() as session:
        listed, cursor = await repository.list_runs(
            session, owner=owner, status=None, limit=3, cursor=None
        )
    assert cursor == first.next_cursor  # the same cursors as before
    assert [RunOut.model_validate(r, from_attributes=True) for r in listed] == first.items

    run_id = ids[0]
    async with session_factory.begin() as session:
        for i in range(3):
            await session.execute(
                text("INSERT INTO run_events (run_id, name, payload) VALUES (:r, 'x.y', :p)"),
                {"r": run_id, "p": json.dumps({"i": i, "f": 1e-7, "s": "é\u2028"})},
            )
    body = await reads.events_page_json(engine, run_id, owner, after=0, limit=500)
    async with session_factory() as session:
        events = await list_events(session, run_id, after=0, limit=500)
    items = [EventOut.model_validate(e, from_attributes=True) for e in events]
    expected = EventPage(items=items, next_after=items[-1].id)
    assert json.loads(body or b"") == json.loads(expected.model_dump_json())
    empty = await reads.events_page_json(engine, run_id, owner, after=10**12, limit=5)
    assert json.loads(empty or b"") == {"items": [], "next_after": 10**12}
    assert await reads.events_page_json(engine, run_id, "someone-else", after=0, limit=5) is None
