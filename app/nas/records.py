"""Plain, JSON-able records exchanged with the service (no keras import)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from app.nas.columns import FeatureColumn
from app.nas.selection import Choice
from app.nas.spec import Task

__all__ = [
    "Preprocessing",
    "ProgressReporter",
    "SearchResult",
    "SearchStatus",
    "TrialRecord",
    "TrialStart",
    "TrialStatus",
]

TrialStatus = Literal["completed", "pruned", "failed"]
SearchStatus = Literal["completed", "exhausted", "cancelled", "timed_out"]


@dataclass(frozen=True)
class Preprocessing:
    """How a run's raw rows become model inputs, and model outputs answers.

    Saved as ``preprocessing.json`` beside the best model. Features are standardised with
    the training split's ``x_mean``/``x_std``; regression targets were trained in standard
    units (``y_mean``/``y_std``). ``in_model``: the saved model carries these
    transformations as layers, so it takes raw rows and answers in target units. Runs saved
    before it did (files without the key) hold the bare network, which `predict` wraps.
    """

    dataset: str
    task: Task
    n_classes: int
    x_mean: list[float]
    x_std: list[float]
    y_mean: float = 0.0
    y_std: float = 1.0
    in_model: bool = True
    #: Uploaded tables: the raw feature columns (`app.nas.columns`); empty for the built-in
    #: datasets, whose rows are plain numbers standardised with ``x_mean``/``x_std``.
    columns: tuple[FeatureColumn, ...] = ()
    #: Uploaded tables' classes as they were in the file, in the model's output order
    #: (the downloaded predictor answers with them); empty otherwise.
    labels: tuple[str | int | float, ...] = ()

    @property
    def input_dim(self) -> int:
        return len(self.columns) if self.columns else len(self.x_mean)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["columns"] = [c.to_dict() for c in self.columns]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in known}
        fields["columns"] = tuple(FeatureColumn.from_dict(c) for c in data.get("columns") or ())
        fields["labels"] = tuple(data.get("labels") or ())
        # Files written before the model carried its preprocessing have no `in_model`.
        return cls(**{"in_model": False, **fields})


@dataclass(frozen=True)
class TrialStart:
    """Sent to the reporter when a candidate starts training (or resumes, for SH rungs)."""

    number: int
    architecture: dict[str, Any]
    hyperparameters: dict[str, Any]
    params_count: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrialRecord:
    """The final record of one trial.

    ``number`` is 1-based and fixed by the seeded candidate sequence, so an interrupted run
    resumed with the same spec gives every trial the same number. ``score`` is the best
    objective value over the epochs run (Cerebros ranks by best epoch), ``best_epoch`` is
    1-based. ``history`` has one metrics dict per epoch (with an ``epoch`` key).

    ``skipped``: the candidate was over the trainable-parameter cap, so it was never built
    (status ``failed``, the reason in ``error``); it counts neither against ``max_trials``
    nor as a failure for ``max_failed_trials``.
    """

    number: int
    status: TrialStatus
    architecture: dict[str, Any]
    hyperparameters: dict[str, Any]
    params_count: int
    score: float | None = None
    best_epoch: int | None = None
    epochs_run: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0
    fingerprint: str = ""
    skipped: bool = False
    #: The epochs the trial was asked to reach (its fidelity); 0 in records of old runs.
    epochs_target: int = 0
    #: A continuation (promotion) of this trial's saved model, from ``initial_epoch``.
    parent: int | None = None
    initial_epoch: int = 0
    #: The spec's ``objectives`` measured for this trial (a Keras metric at the best epoch,
    #: ``params``, ``inference_ms``); empty for single-objective runs.
    objectives: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class SearchResult:
    """Outcome of `run_search`.

    ``status``: ``completed`` (budget of trials used), ``exhausted`` (the space ran out of new
    architectures first), ``cancelled`` (``should_stop`` returned True) or ``timed_out``
    (``budget.max_seconds`` elapsed). ``trials`` includes records reused from
    ``completed_trials``. ``best`` is the completed trial the spec's ``selection`` rule
    chose (the best score by default), and ``selection`` what that rule found.
    """

    status: SearchStatus
    objective: str
    direction: Literal["max", "min"]
    trials: list[TrialRecord]
    best: TrialRecord | None
    total_epochs: int
    artifacts: dict[str, str] = field(default_factory=dict)
    message: str = ""
    selection: Choice | None = None

    @property
    def trials_completed(self) -> int:
        return sum(1 for t in self.trials if t.status == "completed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "objective": self.objective,
            "direction": self.direction,
            "trials": [t.to_dict() for t in self.trials],
            "trials_completed": self.trials_completed,
            "best": self.best.to_dict() if self.best else None,
            "total_epochs": self.total_epochs,
            "artifacts": dict(self.artifacts),
            "message": self.message,
            "selection": None if self.selection is None else self.selection.to_dict(),
        }


class ProgressReporter(Protocol):
    """Receives progress from `run_search` (the service persists and streams it).

    Calls come from the thread running the search. ``trial_started`` is sent once per trial
    (at its first rung for successive halving); ``trial_finished`` once, with the final record.
    """

    def trial_started(self, trial: TrialStart) -> None: ...

    def epoch_finished(self, trial_number: int, epoch: int, metrics: dict[str, float]) -> None: ...

    def trial_finished(self, trial: TrialRecord) -> None: ...
