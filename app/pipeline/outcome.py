"""`execute_nas_run`'s durable result and the run result checked from it."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.errors import CerebrosError
from app.nas.records import SearchResult, SearchStatus
from app.saga import StepRejected
from app.schemas.runs import Direction, RunSelection, RunSummary

__all__ = ["BestTrial", "InvalidResult", "RunCancelled", "SearchOutcome"]


class InvalidResult(CerebrosError):
    """The engine's result does not hold what a finished run must have."""


class RunCancelled(StepRejected):
    """The user asked to cancel the run while it was running (the saga fails and is undone)."""


class BestTrial(BaseModel):
    """The best trial as `execute_nas_run` keeps it (its history is in the trials table)."""

    model_config = ConfigDict(extra="ignore")

    number: int | None = None
    score: float | None = None
    architecture: dict[str, Any] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] | None = None


class SearchOutcome(BaseModel):
    """`execute_nas_run`'s durable result: the engine's `SearchResult` without its trials."""

    model_config = ConfigDict(extra="ignore")

    status: SearchStatus
    objective: str
    direction: Direction
    best: BestTrial | None = None
    trials_completed: int = 0
    trials_total: int | None = None
    total_epochs: int | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)
    message: str = ""
    selection: RunSelection | None = None

    @classmethod
    def of(cls, result: SearchResult) -> SearchOutcome:
        best = result.best
        return cls(
            status=result.status,
            objective=result.objective,
            direction=result.direction,
            best=None
            if best is None
            else BestTrial(
                number=best.number,
                score=best.score,
                architecture=best.architecture,
                hyperparameters=best.hyperparameters,
            ),
            trials_completed=result.trials_completed,
            trials_total=len(result.trials),
            total_epochs=result.total_epochs,
            artifacts=dict(result.artifacts),
            message=result.message,
            selection=None
            if result.selection is None
            else RunSelection.model_validate(result.selection.to_dict()),
        )

    def summary(self) -> RunSummary:
        """The run's result: what a finished search must hold, checked once, here.

        Raises `RunCancelled` for a search the user stopped and `InvalidResult` for one
        without a completed trial or a best trial with a finite score and an architecture.
        """
        status = self.status
        if status == "cancelled":
            raise RunCancelled("the run was cancelled by the user")
        if self.trials_completed < 1:
            raise InvalidResult(f"no trial completed ({self.message or 'no message'})")
        best = self.best or BestTrial()
        if best.score is None or not math.isfinite(best.score):
            raise InvalidResult("the best trial has no finite score")
        if not best.architecture:
            raise InvalidResult("the best trial has no architecture")
        return RunSummary(
            status=status,
            objective=self.objective,
            direction=self.direction,
            best_score=best.score,
            best_trial=best.number,
            best_architecture=best.architecture,
            best_hyperparameters=best.hyperparameters,
            trials_completed=self.trials_completed,
            trials_total=self.trials_total,
            total_epochs=self.total_epochs,
            artifacts=self.artifacts,
            message=self.message,
            selection=self.selection,
        )
