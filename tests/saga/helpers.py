"""Shared helpers for the saga tests: step factories that log calls, and table readers."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.saga_models import SagaRow, SagaStepRow
from app.saga import Input, Result, Step, StepContext


class SimulatedCrash(BaseException):
    """Stands for the process dying: not an Exception, so no compensation or undo runs."""


def new_id(prefix: str = "saga") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Log:
    """Records every call made to step callables, in order."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def of(self, kind: str) -> list[str]:
        return [name for k, name in self.calls if k == kind]

    def count(self, kind: str) -> Counter[str]:
        return Counter(self.of(kind))

    def step(
        self,
        name: str,
        deps: tuple[str, ...] = (),
        *,
        fail: bool = False,
        undo: bool = True,
        undo_fails: bool = False,
        value: Any = None,
    ) -> Step:
        """A step that logs run/undo, returns `value` (default: its name + its inputs)."""

        async def run(ctx: StepContext, **kwargs: Any) -> Any:
            self.calls.append(("run", name))
            if fail:
                raise ValueError(f"{name} broke")
            return value if value is not None else {"step": name, "inputs": kwargs}

        async def do_undo(ctx: StepContext, result: Any, **kwargs: Any) -> None:
            self.calls.append(("undo", name))
            assert result == (value if value is not None else {"step": name, "inputs": kwargs})
            if undo_fails:
                raise RuntimeError(f"undo of {name} broke")

        inputs: dict[str, Input | Result] = {d: Result(d) for d in deps}
        return Step(name, run=run, undo=do_undo if undo else None, inputs=inputs)


async def saga_row(factory: async_sessionmaker[AsyncSession], saga_id: str) -> SagaRow:
    async with factory() as session:
        row = await session.get(SagaRow, saga_id)
        assert row is not None, f"saga {saga_id} not stored"
        return row


async def step_rows(
    factory: async_sessionmaker[AsyncSession], saga_id: str
) -> dict[str, SagaStepRow]:
    async with factory() as session:
        rows = await session.execute(select(SagaStepRow).where(SagaStepRow.saga_id == saga_id))
        return {r.name: r for r in rows.scalars()}


async def states(factory: async_sessionmaker[AsyncSession], saga_id: str) -> dict[str, str]:
    return {name: row.state for name, row in (await step_rows(factory, saga_id)).items()}
