"""Request and response models of /runs, and the typed records of a run's stored JSON.

`RunSummary` (`runs.result`) and `RunError` (`runs.error`) are the JSON the run row stores
and the API answers; `StoredSpec` reads back the few fields of a stored spec the service
needs (the spec was validated in full once, when the run was submitted).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.db.models import RunStatus
from app.nas.selection import SelectionRule
from app.nas.spec import Budget, NasSpec, objective_direction

Direction = Literal["max", "min"]


class RunCreate(NasSpec):
    """A NAS run request: the NAS spec plus an optional client-chosen run id."""

    # Lax for this one field only: strict would want a uuid.UUID object, and JSON has strings.
    run_id: uuid.UUID | None = Field(
        default=None, strict=False, description="Client-chosen id; generated (UUID4) when absent."
    )


class RunSelection(BaseModel):
    """Which rule chose the run's model (the spec's ``selection``) and what it chose."""

    rule: SelectionRule
    tolerance: float | None = Field(
        default=None, description="smallest_within_tolerance: the tolerance, in score units"
    )
    trial: int = Field(description="the chosen trial: `best_trial`, whose model is served")
    score: float = Field(allow_inf_nan=False, description="the chosen trial's score")
    params: int = Field(description="the chosen trial's trainable parameters")
    top_trial: int = Field(description="the trial with the best score (the choice under `best`)")
    top_score: float = Field(allow_inf_nan=False)


class RunSummary(BaseModel):
    """A succeeded run's result: the search's outcome and its best trial (`runs.result`).

    Built and checked once, by the pipeline's `process_results` step, from the search's
    outcome; stored as its JSON dump, which the API answers as is (`RunOut.result`).
    """

    status: Literal["completed", "exhausted", "timed_out"] = Field(
        description="completed (budget used), exhausted (no new architecture left), timed_out"
    )
    objective: str
    direction: Direction
    best_score: float = Field(
        allow_inf_nan=False,
        description="the chosen trial's score (the best one unless `selection` says otherwise)",
    )
    best_trial: int | None = Field(
        default=None, description="the trial chosen by the spec's selection rule: the model"
    )
    best_architecture: dict[str, Any]
    best_hyperparameters: dict[str, Any] | None = None
    trials_completed: int = Field(ge=1)
    trials_total: int | None = None
    total_epochs: int | None = None
    artifacts: dict[str, str] = Field(
        default_factory=dict, description="Paths of the run's files: best_model, history, ..."
    )
    message: str = ""
    selection: RunSelection | None = Field(
        default=None, description="the rule that chose `best_trial` (absent in older results)"
    )

    @classmethod
    def read(cls, stored: Mapping[str, Any] | None) -> RunSummary | None:
        """A stored result, typed; None when there is none or it is not a `RunSummary`.

        A row that is not one was written by hand or by an older version: it is still answered as
        stored.
        """
        if stored is None:
            return None
        try:
            return cls.model_validate(stored)
        except ValidationError:
            return None


class ErrorDetail(BaseModel):
    """An exception as stored: its type and message."""

    type: str
    message: str = ""


class UndoRecord(BaseModel):
    """What undoing one completed step did when its run failed."""

    step: str
    status: Literal["undone", "undo_failed", "no_undo"]
    error: ErrorDetail | None = None


class RunError(BaseModel):
    """Why a run failed or was cancelled (`runs.error`): one shape for every path.

    A saga step that failed sets `step` and `type` (the step's exception type). An error
    outside the steps (the run's job) has no `step`; `type` is its kind (`internal`,
    `transient_exhausted`, `invalid_arguments`) and `error` the exception's type. `undo`
    says what each completed step's undo did, newest first.
    """

    step: str | None = None
    type: str = "Error"
    error: str | None = None
    message: str = ""
    undo: list[UndoRecord] = Field(default_factory=list)


class _StoredParameters(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    direction: Direction | None = None


class _StoredBudget(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    max_trials: int = Budget().max_trials


class StoredSpec(BaseModel):
    """The fields of a run's stored spec that its progress and trial ranking read.

    The stored spec is the dump of a `NasSpec` validated when the run was submitted (its
    objective filled in), so it is read, not validated again: a spec stored before a limit
    changed still reads. Unknown or malformed fields read as their defaults.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    objective: str | None = None
    parameters: _StoredParameters = Field(default_factory=_StoredParameters)
    budget: _StoredBudget = Field(default_factory=_StoredBudget)

    @classmethod
    def read(cls, spec: Mapping[str, Any]) -> StoredSpec:
        try:
            return cls.model_validate(spec)
        except ValidationError:
            return cls()

    @property
    def direction(self) -> Direction | None:
        """`parameters.direction` if given, else the objective's (`NasSpec.direction`)."""
        if self.parameters.direction is not None:
            return self.parameters.direction
        return objective_direction(self.objective) if self.objective else None


class SpecObjective(Protocol):
    """What a spec says of its objective: a `NasSpec`, or a `StoredSpec` read back."""

    @property
    def objective(self) -> str | None: ...

    @property
    def direction(self) -> Direction | None: ...


class RunObjective(BaseModel):
    """The objective a run ranks its trials by, and in which direction."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    direction: Direction | None = None

    @classmethod
    def of(cls, result: RunSummary | None, spec: SpecObjective) -> RunObjective:
        """From the run's result once it has one, else from its stored spec."""
        if result is not None:
            return cls(name=result.objective, direction=result.direction)
        return cls(name=spec.objective, direction=spec.direction)


class RunProgress(BaseModel):
    trials_done: int = 0
    trials_total: int = 0
    best_score: float | None = None
    current_step: str | None = None


class RunOut(BaseModel):
    id: uuid.UUID
    owner: str
    status: RunStatus
    spec: dict[str, Any]
    current_step: str | None = None
    result: dict[str, Any] | None = Field(
        default=None, description="Once the run succeeded: its `RunSummary`, as stored."
    )
    error: RunError | None = None
    job_id: int | None = None
    progress: RunProgress | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next (older) page."
    )


class EventOut(BaseModel):
    id: int
    run_id: uuid.UUID
    name: str
    payload: dict[str, Any]
    correlation_id: str | None = None
    created_at: datetime


class LiveEventOut(BaseModel):
    """A live-only notification on a stream (a trial's start, its epochs): no id, no replay.

    Sent as an SSE event without an ``id:`` line, so a client's Last-Event-ID never points at
    it; the durable record of the same progress is the trial's history, stored at its end.
    """

    live: Literal[True] = True
    run_id: uuid.UUID
    name: str
    payload: dict[str, Any]
    created_at: datetime


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int | None = Field(default=None, description="Pass as `after` to continue.")
