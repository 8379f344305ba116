"""Train one trial: the only place a candidate is built and fitted.

Every driver (the serial engine, a queue worker's `cerebros.run_trial` job) trains through
`train_trial`, so numbering, seeding, continuation from a parent's checkpoint, failure
capture and the record are the same everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.nas.backend import keras
from app.nas.builder import build_model
from app.nas.datasets import Dataset
from app.nas.measure import measure_inference_ms
from app.nas.model_bytes import model_from_bytes, model_to_bytes
from app.nas.records import TrialRecord, TrialStart
from app.nas.space import Architecture
from app.nas.spec import NasSpec
from app.nas.strategies.base import NewTrial
from app.nas.trainer import EpochCallback, TrialFailed, compile_candidate, fit_candidate

__all__ = ["TrialRequest", "TrialResult", "train_trial"]


@dataclass(frozen=True)
class TrialRequest:
    """Trial ``number``: what the planner decided to train."""

    number: int
    architecture: Architecture
    epochs: int
    initial_epoch: int = 0
    parent: int | None = None
    checkpoint: bool = False

    @classmethod
    def of(cls, number: int, decision: NewTrial) -> TrialRequest:
        return cls(
            number=number,
            architecture=decision.architecture,
            epochs=decision.epochs,
            initial_epoch=decision.initial_epoch,
            parent=decision.parent,
            checkpoint=decision.checkpoint,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON a queued trial row keeps (what its job trains)."""
        return {
            "architecture": self.architecture.to_dict(),
            "epochs": self.epochs,
            "initial_epoch": self.initial_epoch,
            "parent": self.parent,
            "checkpoint": self.checkpoint,
        }

    @classmethod
    def from_dict(cls, number: int, data: dict[str, Any]) -> TrialRequest:
        return cls(
            number=number,
            architecture=Architecture.from_dict(data["architecture"]),
            epochs=int(data["epochs"]),
            initial_epoch=int(data.get("initial_epoch") or 0),
            parent=None if data.get("parent") is None else int(data["parent"]),
            checkpoint=bool(data.get("checkpoint")),
        )


@dataclass
class TrialResult:
    """The final record, and for a completed trial its trained model (and checkpoint)."""

    record: TrialRecord
    model: keras.Model | None = None
    checkpoint: bytes | None = None


def train_trial(
    spec: NasSpec,
    data: Dataset,
    request: TrialRequest,
    *,
    parent_model: bytes | None = None,
    on_start: Callable[[TrialStart], None] | None = None,
    on_epoch: EpochCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrialResult:
    """Build (or load the parent's model), fit to ``request.epochs``, and record the trial.

    A build, load or training error ends the trial ``failed`` (the record says why); only
    `app.nas.trainer.Cancelled` propagates (the caller decides what a stop means). The
    caller frees the backend's memory (`clear_backend_caches`) once it dropped the result's
    model.
    """
    started = time.monotonic()
    arch = request.architecture
    base: dict[str, Any] = {
        "number": request.number,
        "architecture": arch.to_dict(),
        "hyperparameters": arch.hyperparameters(),
        "params_count": arch.params_count(),
        "fingerprint": arch.fingerprint(),
        "epochs_target": request.epochs,
        "parent": request.parent,
        "initial_epoch": request.initial_epoch,
    }
    error = ""
    model = None
    try:
        if request.parent is None:
            model = build_model(arch, seed=spec.parameters.seed + request.number)
            space = spec.search_space
            compile_candidate(
                model,
                learning_rate=arch.learning_rate,
                loss=arch.loss,
                task=data.task,
                optimizer=space.optimizer,
                weight_decay=space.weight_decay,
            )
        elif parent_model is None:
            error = f"the saved model of trial {request.parent} is missing"
        else:
            model = model_from_bytes(parent_model)
    except Exception as exc:  # MemoryError included: fail this trial, not the search
        error = f"could not build the model: {type(exc).__name__}: {exc}"
    if error or model is None:
        # Recorded outside the handler: the traceback's frames hold the half-built model.
        return TrialResult(_failed(base, f"TrialFailed: {error}", started))
    if on_start is not None:
        on_start(
            TrialStart(
                number=request.number,
                architecture=base["architecture"],
                hyperparameters=base["hyperparameters"],
                params_count=int(model.count_params()),
            )
        )
    params = spec.parameters
    try:
        outcome = fit_candidate(
            model,
            data,
            epochs=request.epochs,
            start_epoch=request.initial_epoch,
            batch_size=params.batch_size,
            objective=spec.resolved_objective,
            direction=spec.direction,
            patience=params.early_stopping_patience,
            on_epoch=on_epoch,
            should_stop=should_stop,
        )
    except TrialFailed as exc:
        error = str(exc)
    if error:
        del model
        return TrialResult(_failed(base, f"TrialFailed: {error}", started))
    checkpoint = model_to_bytes(model) if request.checkpoint else None
    record = TrialRecord(
        **base,
        objectives=measure_objectives(spec, data, model, arch, outcome.history, outcome.best_epoch),
        status="completed",
        score=outcome.score,
        best_epoch=outcome.best_epoch,
        epochs_run=outcome.epochs_run,
        history=list(outcome.history),
        duration_s=round(time.monotonic() - started, 4),
    )
    return TrialResult(record, model=model, checkpoint=checkpoint)


#: Rows of the fixed batch ``inference_ms`` is measured on (the first validation rows).
INFERENCE_BATCH = 256


def measure_objectives(
    spec: NasSpec,
    data: Dataset,
    model: keras.Model,
    arch: Architecture,
    history: list[dict[str, float]],
    best_epoch: int | None,
) -> dict[str, float]:
    """The spec's ``objectives`` for a trained trial (none for a single-objective run).

    A Keras metric is taken at the trial's best epoch (by the first objective), so every
    value describes the same model, the one the trial keeps.
    """
    if not spec.objectives:
        return {}
    at_best = next((h for h in history if int(h.get("epoch", 0)) == best_epoch), None)
    at_best = at_best or (history[-1] if history else {})
    values: dict[str, float] = {}
    for name, _direction in spec.resolved_objectives:
        if name == "params":
            values[name] = float(arch.trainable_params_count())
        elif name == "inference_ms":
            values[name] = measure_inference_ms(model, data.x_val[:INFERENCE_BATCH])
        elif name in at_best:
            values[name] = float(at_best[name])
    return values


def _failed(base: dict[str, Any], error: str, started: float) -> TrialRecord:
    return TrialRecord(
        **base,
        status="failed",
        error=error,
        duration_s=round(time.monotonic() - started, 4),
    )
