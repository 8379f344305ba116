"""Shared helpers for the saga tests: step factories that log calls, and state readers."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from app.saga import Input, Result, SagaRecord, SagaStore, Step, StepContext, StepRecord


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


async def saga_record(store: SagaStore, saga_id: str) -> SagaRecord:
    """The stored saga, read back through the store under test."""
    record = await store.load(saga_id)
    assert record is not None, f"saga {saga_id} not stored"
    return record


async def step_records(store: SagaStore, saga_id: str) -> dict[str, StepRecord]:
    return (await saga_record(store, saga_id)).steps


async def states(store: SagaStore, saga_id: str) -> dict[str, str]:
    return {name: step.state for name, step in (await step_records(store, saga_id)).items()}
