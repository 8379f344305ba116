"""Response models of /runs/{id}/trials, the best model and predictions."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.db.models import TrialStatus
from app.nas.spec import STRICT
from app.schemas.runs import Direction

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
    status: TrialStatus = Field(
        description="queued, running, completed, pruned, failed or cancelled"
    )
    architecture: ArchitectureSummary | None = None
    params_count: int | None = None
    score: float | None = Field(default=None, description="Best objective value over epochs")
    best_epoch: int | None = None
    epochs_run: int = 0
    duration_s: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    parent: int | None = Field(
        default=None, description="The trial whose saved model this one continues (ASHA)"
    )
    epochs_target: int | None = Field(default=None, description="The epochs it trains to")
    worker: str | None = Field(default=None, description="host:pid of the worker that trained it")


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
    direction: Direction | None = None


#: One raw value of a row: a number, a string (a categorical column's value) or null.
Cell = float | str | None


def _is_cell(value: object) -> bool:
    if value is None or isinstance(value, str):
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class PredictRequest(BaseModel):
    # As strict as the run spec: no "1.5" or true for a number, no NaN or infinity (which
    # the model would turn into a NaN prediction), no unknown fields.
    model_config = STRICT

    rows: list[list[Cell] | dict[str, Cell]] = Field(
        min_length=1,
        max_length=MAX_PREDICT_ROWS,
        description=f"Raw feature rows (at most {MAX_PREDICT_ROWS}): lists in the dataset's "
        "column order, or (uploaded datasets) objects keyed by column name; a cell is a "
        "number, a string (a categorical column's value) or null (missing)",
    )

    @model_validator(mode="before")
    @classmethod
    def _cells(cls, data: Any) -> Any:
        """Check every cell first, so an error names it (``rows.0.3``) whatever the row's shape.

        A union of list and object would add its member's name to the location.
        """
        rows = data.get("rows") if isinstance(data, dict) else None
        for r, row in enumerate(rows if isinstance(rows, list) else []):
            if not isinstance(row, dict | list):
                continue  # the field's own validation names it
            for c, value in row.items() if isinstance(row, dict) else enumerate(row):
                if not _is_cell(value):
                    raise ValidationError.from_exception_data(
                        cls.__name__,
                        [
                            InitErrorDetails(
                                type=PydanticCustomError(
                                    "cell_type", "Input should be a finite number, a string or null"
                                ),
                                loc=("rows", r, c),
                                input=value,
                            )
                        ],
                    )
        return data


class PredictResponse(BaseModel):
    predictions: list[Any] = Field(
        description="Class indices (classification) or values in target units (regression)"
    )
    run_id: str
    trial: int | None = None


class ParetoObjective(BaseModel):
    name: str
    direction: Literal["maximize", "minimize"]


class ParetoTrial(BaseModel):
    number: int
    objectives: dict[str, float]
    score: float | None = None
    params_count: int | None = None


class ParetoFront(BaseModel):
    """The run's non-dominated completed trials over its objectives, best first objective first."""

    objectives: list[ParetoObjective]
    items: list[ParetoTrial]
