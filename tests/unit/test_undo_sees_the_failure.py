"""An undo reads why its saga fails from its context (`StepContext.failure`), in memory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from app.saga import InMemorySagaStore, Saga, SagaFailed, SagaRunner, Step, StepContext


async def test_undos_get_the_stored_failure_and_runs_get_none() -> None:
    seen: dict[str, Mapping[str, Any] | None] = {}

    async def ok(ctx: StepContext) -> int:
        seen[f"run {ctx.step}"] = ctx.failure
        return 1

    async def undo(ctx: StepContext, result: Any) -> None:
        seen[f"undo {ctx.step}"] = ctx.failure

    async def fail(ctx: StepContext) -> None:
        raise ValueError("broken")

    async def compensate(ctx: StepContext, error: BaseException) -> None:
        seen["compensate"] = ctx.failure  # before the saga's failure is recorded

    saga = Saga(
        "why",
        [
            Step("a", run=ok, undo=undo),
            Step("b", run=fail, compensate=compensate, after=["a"]),
        ],
    )
    runner = SagaRunner(InMemorySagaStore())
    with pytest.raises(SagaFailed):
        await runner.run(saga, saga_id="s1", inputs={})
    assert seen["run a"] is None
    assert seen["compensate"] is None
    assert seen["undo a"] == {"step": "b", "type": "ValueError", "message": "broken"}


async def test_a_cancel_passes_its_failure_to_the_undos() -> None:
    seen: list[Mapping[str, Any] | None] = []

    async def ok(ctx: StepContext) -> int:
        return 1

    async def undo(ctx: StepContext, result: Any) -> None:
        seen.append(ctx.failure)

    saga = Saga("cancelled", [Step("a", run=ok, undo=undo)])
    runner = SagaRunner(InMemorySagaStore())
    await runner.run(saga, saga_id="s2", inputs={})
    failure = {"step": None, "type": "internal", "message": "gone"}
    await runner.cancel(saga, saga_id="s2", reason="gone", failure=failure)
    assert seen == [failure]
