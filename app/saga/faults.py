"""Fault injection for tests of every path a saga can take (gated by configuration).

`FaultInjector` is a `StepMiddleware`: whoever builds the runner installs it (the pipeline
does, from `Settings.fault_step_names`); the engine itself knows nothing of faults, and
faults apply to sub-sagas run through the same runner. A fault is named `step` or `step:point`:
- `before` (the default): the step raises `InjectedFault` before doing anything;
- `after`: the step's work ran (its effect is committed) and then it raises;
- `undo`: the step's undo raises (its first try only, so a retried undo can succeed);
- `transient`: the step raises `StepInterrupted` on every attempt (a dependency that stays
  down until the caller gives up);
- `internal`: the engine itself raises before the step starts, outside any step (a bug or
  a lost store), so the caller's "unexpected error" path runs.

`before`, `after` and `internal` fire on the step's first attempt only: a step rerun after a
retry or a crash then runs normally, which is what makes every scenario end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from app.saga.errors import InjectedFault, StepInterrupted
from app.saga.middleware import RunCall, StepMiddleware, UndoCall

if TYPE_CHECKING:
    from app.saga.context import StepContext
    from app.saga.definition import Step

FaultPoint = Literal["before", "after", "undo", "transient", "internal"]
POINTS: frozenset[str] = frozenset(get_args(FaultPoint))


@dataclass(frozen=True)
class FaultPlan:
    """The set of (step, point) pairs where a fault is injected."""

    faults: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def parse(cls, names: Iterable[str]) -> FaultPlan:
        """`{"a", "b:after"}` -> faults before a and after b; ValueError on an unknown point."""
        faults = set()
        for raw in names:
            step, _, point = raw.strip().partition(":")
            point = point or "before"
            if point not in POINTS:
                raise ValueError(f"fault {raw!r}: point must be one of {sorted(POINTS)}")
            faults.add((step, point))
        return cls(frozenset(faults))

    def has(self, step: str, point: FaultPoint) -> bool:
        return (step, point) in self.faults

    def __bool__(self) -> bool:
        return bool(self.faults)


class FaultInjector(StepMiddleware):
    """Raises where its `FaultPlan` says (see the module's points and first-attempt rules)."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan

    @classmethod
    def parse(cls, names: Iterable[str]) -> FaultInjector:
        """An injector for `FaultPlan.parse(names)`; ValueError on an unknown point."""
        return cls(FaultPlan.parse(names))

    async def before_start(self, saga_id: str, step: str, attempt: int) -> None:
        if attempt == 1 and self.plan.has(step, "internal"):
            raise InjectedFault(step, "internal")  # from the engine itself, outside any step

    async def around_run(self, step: Step, ctx: StepContext, call: RunCall) -> Any:
        first = ctx.attempt == 1
        if self.plan.has(step.name, "transient"):
            raise StepInterrupted(f"transient fault injected into step {step.name!r}")
        if first and self.plan.has(step.name, "before"):
            raise InjectedFault(step.name)
        value = await call()
        if first and self.plan.has(step.name, "after"):
            raise InjectedFault(step.name, "after")
        return value

    async def around_undo(
        self, step: Step, ctx: StepContext, call: UndoCall, *, retry: bool
    ) -> None:
        if not retry and self.plan.has(step.name, "undo"):
            raise InjectedFault(step.name, "undo")
        await call()
