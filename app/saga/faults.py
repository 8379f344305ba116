"""Fault injection for tests of every path a saga can take (gated by configuration).

A fault is named `step` or `step:point`:
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
from typing import Literal, get_args

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
