"""Response models of /runs/{id}/trials, the best model and predictions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.nas.spec import STRICT

MAX_PREDICT_ROWS = 1000


class ArchitectureSummary(BaseModel):
    """Size of a sampled architecture: Dense levels (output included), units, neurons."""

    levels: int = 0
    units: int = 0
    neurons: int = 0

    @classmethod
    def of(cls, architecture: dict[str, Any] | None) -> ArchitectureSummary | None:
        if not architecture or not isinstance(architecture.get("levels"), list):
            return None
        levels = architecture["levels"]
        units = [unit for level in levels for unit in level]
        return cls(
            levels=len(levels),
            units=len(units),
            neurons=sum(int(unit.get("neurons", 0)) for unit in units),
        )


class TrialOut(BaseModel):
    number: int
    status: str = Field(description="queued, running, completed, pruned, failed or cancelled")
    architecture: ArchitectureSummary | None = None
    params_count: int | None = None
    score: float | None = Field(default=None, description="Best objective value over epochs")
    best_epoch: int | None = None
    epochs_run: int = 0
    duration_s: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class TrialDetail(TrialOut):
    hyperparameters: dict[str, Any] | None = None
    architecture_spec: dict[str, Any] | None = Field(
        default=None, description="The full sampled architecture"
    )
    history: list[dict[str, Any]] = Field(default_factory=list, description="One row per epoch")
    error: str | None = None


class TrialList(BaseModel):
    items: list[TrialOut]
    objective: str | None = None
    direction: Literal["max", "min"] | None = None


class PredictRequest(BaseModel):
    # As strict as the run spec: no "1.5" or true for a number, no NaN or infinity (which
    # the model would turn into a NaN prediction), no unknown fields.
    model_config = STRICT

    rows: list[list[float]] = Field(
        min_length=1,
        max_length=MAX_PREDICT_ROWS,
        description=f"Raw feature rows (at most {MAX_PREDICT_ROWS}), each of the model's width",
    )


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(
        description="Class indices (classification) or values in target units (regression)"
    )
    run_id: str
    trial: int | None = None
