"""What a step sees while it runs, and what a saga run returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from app.saga.errors import Halt, UndoOutcome

if TYPE_CHECKING:
    from app.saga.definition import Saga
    from app.saga.runner import SagaRunner


@dataclass(frozen=True)
class SagaOutcome:
    """The result of a saga run that did not fail.

    `status` is 'succeeded' (every step done; `results` holds all step results) or 'halted'
    (a step asked to wait; `halted_by`/`reason` say which and why, `results` holds the
    steps completed so far). A failed saga raises `SagaFailed` instead.
    """

    saga_id: str
    status: Literal["succeeded", "halted"]
    results: dict[str, Any]
    halted_by: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class StepContext:
    """Passed to every run/compensate/undo call of a step."""

    saga_id: str
    step: str
    attempt: int  # 1 for the first run of the step; counts reruns after crashes and retries
    inputs: Mapping[str, Any]  # the saga's inputs
    runner: SagaRunner = field(repr=False)
    # While the saga fails (its undos and late compensations run): the stored failure that
    # undoes it, `{"step", "type", "message", ...}` (`step` None when cancelled from outside).
    failure: Mapping[str, Any] | None = None

    def sub_saga_id(self, key: str | None = None) -> str:
        """The id of this step's sub-saga: `"{saga_id}/{step}"` (plus `"/{key}"`)."""
        base = f"{self.saga_id}/{self.step}"
        return base if key is None else f"{base}/{key}"

    async def run_saga(
        self, saga: Saga, inputs: Mapping[str, Any] | None = None, *, key: str | None = None
    ) -> SagaOutcome:
        """Run (or resume) `saga` as a child of this step and return its outcome.

        A child failure has already undone the child's completed steps and raises
        `SagaFailed`, which fails this step. A halted child raises `Halt`, which halts the
        parent; rerunning the parent reruns this step, which resumes the child. Use `key` to
        run several sub-sagas from one step.
        """
        outcome = await self.runner.run(
            saga, saga_id=self.sub_saga_id(key), inputs=inputs, parent_id=self.saga_id
        )
        if outcome.status == "halted":
            raise Halt(f"sub-saga {outcome.saga_id!r} halted: {outcome.reason or ''}")
        return outcome

    async def undo_saga(self, saga: Saga, *, key: str | None = None) -> tuple[UndoOutcome, ...]:
        """Undo the completed steps of this step's sub-saga (call it from `undo`)."""
        return await self.runner.cancel(
            saga, saga_id=self.sub_saga_id(key), reason=f"parent step {self.step!r} undone"
        )
