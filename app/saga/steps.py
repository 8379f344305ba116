"""Ready-made steps built from the engine's primitives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.saga.context import StepContext
from app.saga.definition import Input, Result, Saga, Step


def sub_saga_step(
    name: str,
    saga: Saga,
    inputs: Mapping[str, Input | Result] | None = None,
    *,
    after: tuple[str, ...] = (),
) -> Step:
    """A step that runs `saga` as a sub-saga with the step's inputs as the child's inputs.

    Its result is the child's results (by step name). If a later parent step fails, its undo
    undoes the child's completed steps too.
    """

    async def run(ctx: StepContext, **kwargs: Any) -> dict[str, Any]:
        return (await ctx.run_saga(saga, kwargs)).results

    async def undo(ctx: StepContext, result: Any, **kwargs: Any) -> None:
        outcomes = await ctx.undo_saga(saga)
        failed = [o.step for o in outcomes if o.status == "undo_failed"]
        if failed:
            raise RuntimeError(f"sub-saga {ctx.sub_saga_id()!r}: undo failed for {failed}")

    return Step(name, run=run, undo=undo, inputs=dict(inputs or {}), after=after)
