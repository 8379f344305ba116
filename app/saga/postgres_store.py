"""`PostgresSagaStore`: the `SagaStore` contract on the `sagas`/`saga_steps` tables.

The only module that reads or writes those tables (`app.saga.models`). Every change is its
own short transaction, so the stored state is the last thing that really happened.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, null, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.saga.models import SagaRow, SagaStepRow
from app.saga.store import (
    ENDED_STATES,
    FINISHED_STATUSES,
    SagaRecord,
    StepRecord,
    check_state,
)


class PostgresSagaStore:
    """Reads and writes saga state through an async session factory."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory

    async def open(
        self, saga_id: str, name: str, inputs: dict[str, Any], parent_id: str | None
    ) -> SagaRecord:
        async with self._sessions.begin() as session:
            await session.execute(
                insert(SagaRow)
                .values(id=saga_id, name=name, status="running", inputs=inputs, parent_id=parent_id)
                .on_conflict_do_nothing(index_elements=["id"])
            )
            await session.execute(
                update(SagaRow)
                .where(SagaRow.id == saga_id, SagaRow.status == "halted")
                .values(status="running", error=null(), updated_at=func.clock_timestamp())
            )
            return await self._load(session, saga_id)

    async def load(self, saga_id: str) -> SagaRecord | None:
        async with self._sessions() as session:
            if await session.get(SagaRow, saga_id) is None:
                return None
            return await self._load(session, saga_id)

    async def _load(self, session: AsyncSession, saga_id: str) -> SagaRecord:
        row = (await session.execute(select(SagaRow).where(SagaRow.id == saga_id))).scalar_one()
        steps = (
            await session.execute(select(SagaStepRow).where(SagaStepRow.saga_id == saga_id))
        ).scalars()
        return SagaRecord(
            id=row.id,
            name=row.name,
            status=row.status,
            inputs=row.inputs,
            error=row.error,
            parent_id=row.parent_id,
            steps={
                s.name: StepRecord(
                    s.name,
                    s.state,
                    s.result,
                    s.error,
                    s.attempts,
                    s.seq,
                    started_at=s.started_at,
                    finished_at=s.finished_at,
                )
                for s in steps
            },
            finished_at=row.finished_at,
        )

    async def add_steps(self, saga_id: str, names: Iterable[str]) -> None:
        rows = [{"saga_id": saga_id, "name": n, "state": "pending"} for n in names]
        if not rows:
            return
        async with self._sessions.begin() as session:
            await session.execute(
                insert(SagaStepRow)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["saga_id", "name"])
            )

    async def step_running(self, saga_id: str, name: str, attempts: int) -> None:
        await self._update_step(
            saga_id,
            name,
            state="running",
            attempts=attempts,
            started_at=func.clock_timestamp(),
            finished_at=null(),
        )

    async def step_succeeded(self, saga_id: str, name: str, result: Any) -> int:
        next_seq = (
            select(func.coalesce(func.max(SagaStepRow.seq), 0) + 1)
            .where(SagaStepRow.saga_id == saga_id)
            .scalar_subquery()
        )
        async with self._sessions.begin() as session:
            seq = (
                await session.execute(
                    update(SagaStepRow)
                    .where(SagaStepRow.saga_id == saga_id, SagaStepRow.name == name)
                    .values(
                        state="succeeded",
                        result=result,
                        error=null(),
                        seq=next_seq,
                        finished_at=func.clock_timestamp(),
                        updated_at=func.clock_timestamp(),
                    )
                    .returning(SagaStepRow.seq)
                )
            ).scalar_one()
        assert seq is not None  # just assigned from a non-null expression
        return seq

    async def step_ended(
        self, saga_id: str, name: str, state: str, error: dict[str, Any] | None
    ) -> None:
        check_state(state, ENDED_STATES)
        values: dict[str, Any] = {"state": state}
        if error is not None:
            values["error"] = error
        if state in ("failed", "compensated"):
            values["finished_at"] = func.clock_timestamp()
        await self._update_step(saga_id, name, **values)

    async def step_pending(self, saga_id: str, name: str, error: dict[str, Any]) -> None:
        await self._update_step(saga_id, name, state="pending", error=error)

    async def saga_failing(self, saga_id: str, error: dict[str, Any]) -> None:
        await self._update_saga(saga_id, error=error)

    async def saga_finished(self, saga_id: str, status: str, error: dict[str, Any] | None) -> None:
        check_state(status, FINISHED_STATUSES)
        finished = null() if status == "halted" else func.clock_timestamp()
        await self._update_saga(
            saga_id,
            status=status,
            error=null() if error is None else error,
            finished_at=finished,
        )

    async def _update_step(self, saga_id: str, name: str, **values: Any) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(SagaStepRow)
                .where(SagaStepRow.saga_id == saga_id, SagaStepRow.name == name)
                .values(updated_at=func.clock_timestamp(), **values)
            )

    async def _update_saga(self, saga_id: str, **values: Any) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(SagaRow)
                .where(SagaRow.id == saga_id)
                .values(updated_at=func.clock_timestamp(), **values)
            )
