"""The one loop around a strategy: what to start now, given the run's trial history.

Both drivers use it: the serial engine (`app.nas.engine`, one trial at a time in this
process) and the distributed coordinator (`app.pipeline.coordinator`, trials as queue jobs
on any worker). The planner owns what is not a choice: trial numbers, the parameter cap
(candidates over it are recorded failed without being built, and do not use up the
budget), the failure limit and how many trials may be active at once. Strategies only
choose (`app.nas.strategies.base`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from app.nas.records import TrialRecord
from app.nas.space import Architecture
from app.nas.strategies.base import (
    Done,
    NewTrial,
    SearchFailed,
    SearchSetup,
    Strategy,
    TrialView,
    Wait,
)

__all__ = [
    "MAX_CONSECUTIVE_OVERSIZED",
    "Plan",
    "PlannedTrial",
    "check_failures",
    "plan",
    "skipped_record",
    "view_of",
]

#: Consecutive architectures over the parameter cap after which the search stops. Each one is
#: recorded (a trial row and an event); a space where even 1 draw in 10 fits gets past it
#: with probability 0.995.
MAX_CONSECUTIVE_OVERSIZED = 50


@dataclass(frozen=True)
class PlannedTrial:
    """A trial to start: its number and what to train."""

    number: int
    request: NewTrial

    def view(self) -> TrialView:
        r = self.request
        return TrialView(
            number=self.number,
            status="queued",
            architecture=r.architecture,
            epochs=r.epochs,
            initial_epoch=r.initial_epoch,
            parent=r.parent,
        )


@dataclass
class Plan:
    """What to do now: start these trials, record these skips; ``done`` once it is over."""

    start: list[PlannedTrial] = field(default_factory=list)
    skipped: list[TrialRecord] = field(default_factory=list)
    done: Done | None = None


def view_of(record: TrialRecord, *, status: str | None = None) -> TrialView:
    """A finished trial's record as its strategy sees it (``status`` overrides the record's)."""
    return TrialView(
        number=record.number,
        status=status or record.status,  # type: ignore[arg-type]  # checked by TrialStatus
        architecture=Architecture.from_dict(record.architecture),
        # Records of runs from before fidelities were recorded: what they trained.
        epochs=record.epochs_target or record.epochs_run,
        initial_epoch=record.initial_epoch,
        parent=record.parent,
        score=record.score if record.status == "completed" else None,
        skipped=record.skipped,
        error=record.error,
        objectives=dict(record.objectives),
    )


def check_failures(setup: SearchSetup, history: Sequence[TrialView]) -> None:
    """Raise `SearchFailed` once more than ``max_failed_trials`` trials failed to train."""
    failed = [t for t in history if t.status == "failed" and not t.skipped and not t.prior]
    limit = setup.spec.parameters.max_failed_trials
    if len(failed) > limit:
        last = max(failed, key=lambda t: t.number)
        raise SearchFailed(
            f"{len(failed)} trials failed (max_failed_trials={limit}); "
            f"last: trial {last.number}: {last.error}"
        )


def skipped_record(number: int, request: NewTrial, refusal: str) -> TrialRecord:
    arch = request.architecture
    return TrialRecord(
        number=number,
        status="failed",
        architecture=arch.to_dict(),
        hyperparameters=arch.hyperparameters(),
        params_count=arch.params_count(),
        error=refusal,
        fingerprint=arch.fingerprint(),
        skipped=True,
        epochs_target=request.epochs,
    )


def plan(strategy: Strategy, history: Sequence[TrialView], *, max_active: int) -> Plan:
    """Ask ``strategy`` until it waits, is done, or ``max_active`` trials are active.

    Raises `SearchFailed` when too many trials failed or nothing fits under the cap.
    """
    setup = strategy.setup
    check_failures(setup, history)
    seen = sorted(history, key=lambda t: t.number)  # prior trials (negative numbers) first
    number = max((t.number for t in seen if not t.prior), default=0)
    oversized = 0
    for t in reversed(seen):  # a resumed run continues its count of skips in a row
        if not t.skipped or t.prior:
            break
        oversized += 1
    out = Plan()
    if oversized >= MAX_CONSECUTIVE_OVERSIZED:
        out.done = _oversized(setup, oversized)
        return out
    while sum(t.active for t in seen) < max_active:
        decision = strategy.ask(seen)
        if isinstance(decision, Done):
            out.done = decision
            break
        if isinstance(decision, Wait):
            if not any(t.active for t in seen):
                raise RuntimeError(f"strategy {strategy.name} waits with no trial active")
            break
        number += 1
        refusal = None
        if decision.parent is None:
            refusal = setup.cap.refusal(decision.architecture.trainable_params_count())
        if refusal is None:
            planned = PlannedTrial(number, decision)
            out.start.append(planned)
            seen.append(planned.view())
            oversized = 0
            continue
        record = skipped_record(number, decision, refusal)
        out.skipped.append(record)
        seen.append(
            TrialView(
                number=number,
                status="failed",
                architecture=decision.architecture,
                epochs=decision.epochs,
                skipped=True,
                error=refusal,
            )
        )
        oversized += 1
        if oversized >= MAX_CONSECUTIVE_OVERSIZED:
            out.done = _oversized(setup, oversized)
            break
    return out


def _oversized(setup: SearchSetup, count: int) -> Done:
    cap = setup.cap
    return Done(
        "exhausted",
        f"no architecture under the cap of {cap.limit:,} trainable parameters after "
        f"{count} draws in a row; {cap.remedy('maximum')}",
    )
