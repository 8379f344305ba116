"""Validated description of one NAS run (pydantic v2, no keras/torch imports).

The HTTP API imports this module to validate requests, so it must stay light: only pydantic
and the standard library. Every model is `extra="forbid"` so a typo in a field name is a 422
naming that field rather than a silently ignored option, and strict: `"1"`, `true` or `2.0`
for an integer is a wrong type, not a guess at what the client meant. An integer is still a
fine float, and NaN or infinity is never a number here (Postgres' jsonb cannot store them).
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from app.nas.selection import Selection
from app.nas.spec_space import (
    ACTIVATIONS,
    FINAL_ACTIVATIONS,
    STRICT,
    SearchSpace,
    field_error,
)

__all__ = [
    "ACTIVATIONS",
    "DATASET_TASKS",
    "FINAL_ACTIVATIONS",
    "MAX_OBJECTIVES",
    "MEASURED_OBJECTIVES",
    "OBJECTIVES",
    "STRICT",
    "Budget",
    "DatasetOptions",
    "NasParameters",
    "NasSpec",
    "Objective",
    "SearchSpace",
    "Selection",
    "Task",
    "is_uploaded_dataset",
    "objective_direction",
]

Task = Literal["classification", "regression"]

#: Which task each known dataset is. Kept here (not in datasets.py) so validation of
#: `objective` against the dataset needs no sklearn/keras import.
DATASET_TASKS: dict[str, Task] = {
    "digits": "classification",
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "diabetes": "regression",
    "classification": "classification",
    "regression": "regression",
    "mnist": "classification",
    "fashion_mnist": "classification",
    "cifar10": "classification",
}

#: An uploaded dataset's id (`POST /datasets`); its task is in its schema, not here, so the
#: service checks the objective against it when the run is submitted (`for_task`).
UPLOADED_DATASET_ID = re.compile(r"^ds_[0-9a-f]{32}$")


def is_uploaded_dataset(dataset_id: str) -> bool:
    """Whether ``dataset_id`` names an uploaded dataset (``ds_`` and 32 hex digits)."""
    return UPLOADED_DATASET_ID.match(dataset_id) is not None


#: Metric names (without the "val_" prefix) each task reports; the objective must be one.
_TASK_METRICS: dict[str, frozenset[str]] = {
    "classification": frozenset({"loss", "accuracy"}),
    "regression": frozenset({"loss", "mae", "mse", "root_mean_squared_error"}),
}
#: Every objective name accepted for some task.
OBJECTIVES: frozenset[str] = frozenset(
    f"{prefix}{name}"
    for names in _TASK_METRICS.values()
    for name in names
    for prefix in ("", "val_")
)
_OBJECTIVE_PATTERN = re.compile(r"^(val_)?[a-z][a-z0-9_]*$")
# Metrics where larger is better; everything else (losses, errors) is minimised.
_MAXIMISED = frozenset({"accuracy"})


#: The configuration of every model here (and of the API's request bodies).
def objective_direction(objective: str) -> Literal["max", "min"]:
    """`"max"` for accuracy-like objectives, `"min"` for losses and errors."""
    base = objective.removeprefix("val_")
    return "max" if base in _MAXIMISED else "min"


class Budget(BaseModel):
    """Limits on the whole search."""

    model_config = STRICT

    max_trials: int = Field(default=10, ge=1, le=500)
    max_epochs: int | None = Field(default=None, ge=1, le=500, description="cap per trial")
    max_seconds: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    max_parallel_trials: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="most trials of this run training at once (default: no limit beyond the "
        "live workers; each run keeps at most one queued trial per live worker)",
    )


class NasParameters(BaseModel):
    """How the search trains candidates."""

    model_config = STRICT

    strategy: Literal[
        "random", "successive_halving", "asha", "hyperband", "tpe", "evolution", "nsga2"
    ] = "asha"
    epochs: int = Field(default=10, ge=1, le=500)
    batch_size: int = Field(default=32, ge=1, le=4096)
    validation_split: float = Field(default=0.2, ge=0.05, le=0.5)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    early_stopping_patience: int | None = Field(default=None, ge=1, le=500)
    reduction_factor: int = Field(default=3, ge=2, le=10)
    min_epochs: int = Field(default=1, ge=1, le=500)
    max_failed_trials: int = Field(default=5, ge=0, le=500)
    max_trial_retries: int = Field(
        default=2,
        ge=0,
        le=20,
        description="times a trial whose worker died (killed, lost) is trained again "
        "elsewhere before it is recorded failed",
    )
    brackets: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="hyperband: how many brackets (default: one per rung)",
    )
    population_size: int = Field(
        default=20,
        ge=2,
        le=500,
        description="evolution: the most recent trials that form the population (and the "
        "first ones, drawn at random); nsga2: trials per generation",
    )
    sample_size: int = Field(
        default=5,
        ge=1,
        le=500,
        description="evolution: trials of the population drawn for each tournament (at most "
        "the population)",
    )
    warm_start_run_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="a run of the same owner and dataset whose finished trials the strategy "
        "learns from (they do not count against this run's budget)",
    )
    direction: Literal["max", "min"] | None = None
    max_params: int | None = Field(
        default=None,
        ge=1,
        le=10**12,
        description="cap on trainable parameters per architecture for this run; it can only "
        "lower the service's CEREBROS_MAX_TRAINABLE_PARAMS",
    )


#: Objectives measured by the service rather than reported by Keras; both are minimised by
#: default: trainable parameters and the median milliseconds of one prediction on a fixed
#: batch (`app.nas.measure`).
MEASURED_OBJECTIVES: frozenset[str] = frozenset({"params", "inference_ms"})
#: Most objectives one run may have.
MAX_OBJECTIVES = 4


class Objective(BaseModel):
    """One objective of a multi-objective run: a Keras metric or a measured quantity."""

    model_config = STRICT

    name: str = Field(description="a Keras metric (val_accuracy, loss...), params or inference_ms")
    direction: Literal["maximize", "minimize"] | None = Field(
        default=None,
        description="default: maximize accuracy, minimize losses, errors, params and inference_ms",
    )

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str) -> str:
        if value not in OBJECTIVES and value not in MEASURED_OBJECTIVES:
            raise ValueError(
                f"unknown objective; allowed: {sorted(OBJECTIVES | MEASURED_OBJECTIVES)}"
            )
        return value

    @property
    def is_metric(self) -> bool:
        """Reported by Keras while training (not measured by the service)."""
        return self.name not in MEASURED_OBJECTIVES

    @property
    def resolved_direction(self) -> Literal["maximize", "minimize"]:
        if self.direction is not None:
            return self.direction
        if self.is_metric and objective_direction(self.name) == "max":
            return "maximize"
        return "minimize"


class DatasetOptions(BaseModel):
    """Options for the synthetic datasets (`classification`, `regression`) and subsampling.

    ``n_samples``/``n_features``/``n_classes``/``noise`` are used by the synthetic datasets
    only (``noise`` is the label-flip fraction for classification and the Gaussian noise
    standard deviation for regression). ``max_samples`` subsamples any dataset (handy for
    mnist on a CPU). ``seed`` seeds the synthetic generator and the subsampling.
    """

    model_config = STRICT

    n_samples: int = Field(default=1000, ge=20, le=100_000)
    n_features: int = Field(default=20, ge=1, le=1_000)
    n_classes: int = Field(default=2, ge=2, le=100)
    noise: float = Field(default=0.1, ge=0, le=100)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    max_samples: int | None = Field(default=None, ge=20, le=1_000_000)

    def used_by(self, dataset_id: str) -> frozenset[str]:
        """The options ``dataset_id`` reads; a stored spec keeps only these."""
        synthetic = _SYNTHETIC_OPTIONS.get(dataset_id)
        if synthetic is not None:
            return synthetic
        # The other datasets only read the subsampling, which `seed` seeds.
        return _SUBSAMPLING_OPTIONS if self.max_samples is not None else frozenset()


_SUBSAMPLING_OPTIONS = frozenset({"max_samples", "seed"})
_SYNTHETIC_OPTIONS: dict[str, frozenset[str]] = {
    "classification": frozenset(DatasetOptions.model_fields),
    "regression": frozenset(DatasetOptions.model_fields) - {"n_classes"},
}


class NasSpec(BaseModel):
    """Everything one NAS run needs. The service wraps it (adding ``run_id``)."""

    model_config = STRICT

    dataset_id: str
    dataset_options: DatasetOptions = Field(default_factory=DatasetOptions)
    objective: str | None = Field(
        default=None,
        description="keras metric to rank by; default val_accuracy (classification) or "
        "val_loss (regression)",
    )
    objectives: list[Objective] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_OBJECTIVES,
        description="several objectives (multi-objective strategies, the Pareto front); at "
        "least one a Keras metric, each name once; `objective` defaults to the first metric",
    )
    selection: Selection = Field(
        default_factory=Selection,
        description="which completed trial is the run's model: the best score (default), or "
        "the smallest within a tolerance of the best score (`app.nas.selection`)",
    )
    search_space: SearchSpace = Field(default_factory=SearchSpace)
    budget: Budget = Field(default_factory=Budget)
    parameters: NasParameters = Field(default_factory=NasParameters)

    @field_validator("dataset_id")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        if value not in DATASET_TASKS and not is_uploaded_dataset(value):
            raise ValueError(
                f"unknown dataset; known: {sorted(DATASET_TASKS)}, or an uploaded dataset's "
                "id (ds_...)"
            )
        return value

    @field_validator("objective")
    @classmethod
    def _objective_shape(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not _OBJECTIVE_PATTERN.match(value) or value not in OBJECTIVES:
            raise ValueError(f"unknown objective; allowed: {sorted(OBJECTIVES)}")
        return value

    @field_validator("objectives")
    @classmethod
    def _objectives_distinct(cls, value: list[Objective] | None) -> list[Objective] | None:
        if value is None:
            return value
        names = [o.name for o in value]
        if len(set(names)) != len(names):
            raise ValueError("each objective may be named once")
        if not any(o.is_metric for o in value):
            raise ValueError("at least one objective must be a Keras metric, to train by")
        return value

    @model_validator(mode="after")
    def _objective_fits_task(self) -> NasSpec:
        task = DATASET_TASKS.get(self.dataset_id)
        if task is None:  # uploaded: `for_task` checks it once its dataset is looked up
            return self
        return self._fit_objective(task)

    def for_task(self, task: Task) -> Self:
        """This spec for a dataset of ``task``: default objective set, a mismatch raised.

        A mismatch is raised as a ValidationError at ``objective``. For uploaded datasets, whose
        task the spec alone cannot know.
        """
        return self.model_copy()._fit_objective(task)

    def _fit_objective(self, task: Task) -> Self:
        for index, o in enumerate(self.objectives or []):
            if o.is_metric and o.name.removeprefix("val_") not in _TASK_METRICS[task]:
                raise field_error(
                    type(self).__name__,
                    ("objectives", index, "name"),
                    o.name,
                    "objective_task_mismatch",
                    "objective {objective} does not fit a {task} dataset",
                    objective=o.name,
                    task=task,
                )
        if self.objective is None and self.objectives:
            self.objective = next(o.name for o in self.objectives if o.is_metric)
        if self.objective is None:
            self.objective = "val_accuracy" if task == "classification" else "val_loss"
        elif self.objective.removeprefix("val_") not in _TASK_METRICS[task]:
            from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

            # Raised as a ValidationError located at `objective` so clients see which field.
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "objective_task_mismatch",
                            "objective {objective} does not fit a {task} dataset; "
                            "use one of {allowed}",
                            {
                                "objective": self.objective,
                                "task": task,
                                "allowed": ", ".join(
                                    sorted(
                                        f"{p}{m}" for m in _TASK_METRICS[task] for p in ("", "val_")
                                    )
                                ),
                            },
                        ),
                        loc=("objective",),
                        input=self.objective,
                    )
                ],
            )
        options = self.dataset_options
        if self.dataset_id == "classification" and options.n_classes > 2 ** min(
            options.n_features, 16
        ):
            raise field_error(
                type(self).__name__,
                ("dataset_options", "n_classes"),
                options.n_classes,
                "too_many_classes",
                "dataset_options.n_classes must be <= 2 ** n_features",
            )
        return self

    @model_serializer(mode="wrap")
    def _dump_used_dataset_options(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Dump only the dataset options the dataset reads, and no key when there are none.

        A stored spec is what the run did: the synthetic datasets' defaults in a ``digits``
        run's spec would say it was generated with them. The dropped options are defaults
        or ignored, so validating the dump gives a spec that runs the same.
        """
        data: dict[str, Any] = handler(self)
        options = data.pop("dataset_options", None)
        if isinstance(options, dict):
            used = self.dataset_options.used_by(self.dataset_id)
            kept = {name: value for name, value in options.items() if name in used}
            if kept:
                data["dataset_options"] = kept
        return data

    @property
    def task(self) -> Task:
        """`classification` or `regression`, from the dataset."""
        return DATASET_TASKS[self.dataset_id]

    @property
    def resolved_objective(self) -> str:
        """The objective (never None after validation)."""
        assert self.objective is not None
        return self.objective

    @property
    def direction(self) -> Literal["max", "min"]:
        """`parameters.direction` if given, else inferred from the objective."""
        return self.parameters.direction or objective_direction(self.resolved_objective)

    @property
    def resolved_objectives(self) -> list[tuple[str, Literal["maximize", "minimize"]]]:
        """(name, direction) of every objective: ``objectives``, else the one objective."""
        if self.objectives:
            return [(o.name, o.resolved_direction) for o in self.objectives]
        return [(self.resolved_objective, "maximize" if self.direction == "max" else "minimize")]

    @property
    def epochs_per_trial(self) -> int:
        """min(parameters.epochs, budget.max_epochs)."""
        cap = self.budget.max_epochs
        return self.parameters.epochs if cap is None else min(self.parameters.epochs, cap)
