"""The owner of the run_artifacts SQL on a real database: put, get, list, delete."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Run
from app.runs import artifacts
from app.runs.artifacts import (
    ARCHITECTURE,
    BEST_MODEL,
    CHECKPOINTS,
    HISTORY,
    checkpoint_name,
    media_type_of,
)

pytestmark = pytest.mark.postgres

Sessions = async_sessionmaker[AsyncSession]


async def new_run(sessions: Sessions) -> uuid.UUID:
    run_id = uuid.uuid4()
    async with sessions.begin() as session:
        session.add(Run(id=run_id, spec={"dataset_id": "iris", "objective": "val_accuracy"}))
    return run_id


def test_names() -> None:
    assert checkpoint_name(7) == "checkpoints/trial_0007.keras"
    assert checkpoint_name(12345).startswith(CHECKPOINTS + "/")
    assert media_type_of(BEST_MODEL) == "application/octet-stream"
    assert media_type_of(ARCHITECTURE) == "application/json"
    assert media_type_of(HISTORY) == "text/csv"
    with pytest.raises(ValueError, match="not negative"):
        checkpoint_name(-1)


async def test_put_get_list_delete_round_trip(session_factory: Sessions) -> None:
    run_id = await new_run(session_factory)
    model = bytes(range(256)) * 1000  # binary, with NUL bytes
    async with session_factory.begin() as session:
        await artifacts.put_artifact(session, run_id, BEST_MODEL, model)
        await artifacts.put_artifact(session, run_id, ARCHITECTURE, b"{}", "application/json")
        for number in (1, 2):
            await artifacts.put_artifact(session, run_id, checkpoint_name(number), b"ck")

    async with session_factory() as session:
        stored = await artifacts.get_artifact(session, run_id, BEST_MODEL)
        assert stored is not None
        assert stored.content == model
        assert (stored.name, stored.media_type, stored.size) == (
            BEST_MODEL,
            "application/octet-stream",
            len(model),
        )
        assert stored.sha256 == hashlib.sha256(model).hexdigest()
        assert stored.created_at.tzinfo is not None
        info = await artifacts.artifact_info(session, run_id, ARCHITECTURE)
        assert info is not None and not hasattr(info, "content")
        assert (info.media_type, info.size) == ("application/json", 2)
        names = [a.name for a in await artifacts.list_artifacts(session, run_id)]
        assert names == sorted([BEST_MODEL, ARCHITECTURE, checkpoint_name(1), checkpoint_name(2)])
        assert await artifacts.get_artifact(session, run_id, HISTORY) is None
        assert await artifacts.artifact_info(session, run_id, HISTORY) is None
        assert await artifacts.list_artifacts(session, uuid.uuid4()) == []

    async with session_factory.begin() as session:  # a prefix is literal: no wildcards
        assert await artifacts.delete_artifacts(session, run_id, prefix="checkpoints%") == 0
        assert await artifacts.delete_artifacts(session, run_id, prefix=CHECKPOINTS + "/") == 2
    async with session_factory() as session:
        names = [a.name for a in await artifacts.list_artifacts(session, run_id)]
        assert names == [ARCHITECTURE, BEST_MODEL]

    async with session_factory.begin() as session:
        assert await artifacts.delete_artifacts(session, run_id) == 2
        assert await artifacts.delete_artifacts(session, run_id) == 0  # idempotent
    async with session_factory() as session:
        assert await artifacts.list_artifacts(session, run_id) == []


async def test_put_replaces_and_the_callers_transaction_decides(session_factory: Sessions) -> None:
    run_id = await new_run(session_factory)
    async with session_factory.begin() as session:
        await artifacts.put_artifact(session, run_id, BEST_MODEL, b"first")
    async with session_factory() as session:
        first = await artifacts.artifact_info(session, run_id, BEST_MODEL)

    async with session_factory.begin() as session:
        await artifacts.put_artifact(session, run_id, BEST_MODEL, b"second!", "x/y")
    async with session_factory() as session:
        second = await artifacts.get_artifact(session, run_id, BEST_MODEL)
    assert first is not None and second is not None
    assert (second.content, second.size, second.media_type) == (b"second!", 7, "x/y")
    assert second.sha256 == hashlib.sha256(b"second!").hexdigest() != first.sha256
    assert second.created_at > first.created_at

    async with session_factory() as session:  # rolled back: nothing happened
        await artifacts.put_artifact(session, run_id, HISTORY, b"a,b\n")
        await artifacts.delete_artifacts(session, run_id)
        await session.rollback()
    async with session_factory() as session:
        assert [a.name for a in await artifacts.list_artifacts(session, run_id)] == [BEST_MODEL]


async def test_rows_go_with_their_run_and_need_one(session_factory: Sessions) -> None:
    run_id = await new_run(session_factory)
    async with session_factory.begin() as session:
        await artifacts.put_artifact(session, run_id, BEST_MODEL, b"model")
    async with session_factory.begin() as session:
        await session.execute(text("DELETE FROM runs WHERE id = :id"), {"id": run_id})
    async with session_factory() as session:
        assert await artifacts.list_artifacts(session, run_id) == []

    with pytest.raises(IntegrityError):
        async with session_factory.begin() as session:
            await artifacts.put_artifact(session, uuid.uuid4(), BEST_MODEL, b"orphan")
    with pytest.raises(ValueError, match="name"):
        async with session_factory.begin() as session:
            await artifacts.put_artifact(session, run_id, "", b"x")
