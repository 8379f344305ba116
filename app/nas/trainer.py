"""Train one candidate: compile, fit with progress/cancellation/early stopping, score.

The score is the best value of the objective over the epochs run (Cerebros ranks a trial by
its best epoch). A non-finite loss fails the trial; ``should_stop`` aborts it with
`Cancelled` between epochs and every ``check_every_batches`` batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from app.nas.backend import BACKEND, keras
from app.nas.datasets import Dataset

__all__ = [
    "Cancelled",
    "FitOutcome",
    "TrialFailed",
    "compile_candidate",
    "fit_candidate",
]

EpochCallback = Callable[[int, dict[str, float]], None]
#: The torch trainer only supports 1 (it raises otherwise); jax/tensorflow run several
#: steps per compiled call, which cuts Python overhead on tiny models.
STEPS_PER_EXECUTION = 1 if BACKEND == "torch" else 4


class Cancelled(Exception):
    """``should_stop`` asked the search to stop while a candidate was training."""


class TrialFailed(Exception):
    """The candidate cannot be trained (non-finite loss, backend error...)."""


@dataclass
class FitOutcome:
    """Per-candidate training state; carried across successive-halving rungs."""

    history: list[dict[str, float]] = field(default_factory=list)
    score: float | None = None
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def _better(a: float, b: float | None, direction: str) -> bool:
    return b is None or (a > b if direction == "max" else a < b)


def compile_candidate(
    model: keras.Model,
    *,
    learning_rate: float,
    loss: str,
    task: str,
    optimizer: Literal["adamw", "adam"] = "adamw",
    weight_decay: float = 0.004,
) -> None:
    """Compile at the architecture's learning rate with the task's metrics.

    The optimizer is the real Cerebros code's by default, AdamW with weight decay 0.004
    (`NeuralNetworkFuture.compile_neural_network`); ``optimizer="adam"`` is plain Adam
    (``weight_decay`` unused). The spec's ``search_space.optimizer`` and ``weight_decay``
    choose them.
    """
    if task == "classification":
        metrics: list[Any] = ["accuracy"]
    else:
        metrics = [
            keras.metrics.MeanAbsoluteError(name="mae"),
            keras.metrics.MeanSquaredError(name="mse"),
            keras.metrics.RootMeanSquaredError(name="root_mean_squared_error"),
        ]
    model.compile(
        optimizer=(
            keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
            if optimizer == "adamw"
            else keras.optimizers.Adam(learning_rate=learning_rate)
        ),
        loss=loss,
        metrics=metrics,
        steps_per_execution=STEPS_PER_EXECUTION,
        jit_compile=False,  # measured much slower for these small, ever-changing graphs
    )


class _TrialCallback(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped
    """Reports epochs, enforces early stopping, NaN failure and cancellation."""

    def __init__(
        self,
        outcome: FitOutcome,
        *,
        objective: str,
        direction: Literal["max", "min"],
        patience: int | None,
        on_epoch: EpochCallback | None,
        should_stop: Callable[[], bool] | None,
        check_every_batches: int,
    ) -> None:
        super().__init__()
        self.outcome = outcome
        self.objective = objective
        self.direction = direction
        self.patience = patience
        self.on_epoch = on_epoch
        self.should_stop = should_stop
        self.check_every_batches = max(1, check_every_batches)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if (batch + 1) % self.check_every_batches:
            return
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrialFailed(
                f"loss became {float(loss)} during epoch {self.outcome.epochs_run + 1}"
            )
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("stop requested during training")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = {
            k: float(v) for k, v in (logs or {}).items() if np.isscalar(v) or hasattr(v, "item")
        }
        if not all(math.isfinite(v) for k, v in metrics.items() if k.endswith("loss")):
            raise TrialFailed(f"loss became non-finite at epoch {epoch + 1}: {metrics}")
        if self.objective not in metrics:
            raise TrialFailed(f"objective {self.objective!r} not in metrics {sorted(metrics)}")
        number = epoch + 1  # 1-based, continues across rungs via initial_epoch
        metrics["epoch"] = float(number)
        self.outcome.history.append(metrics)
        value = metrics[self.objective]
        if math.isfinite(value) and _better(value, self.outcome.score, self.direction):
            self.outcome.score = value
            self.outcome.best_epoch = number
        if self.on_epoch is not None:
            self.on_epoch(number, dict(metrics))
        if (
            self.patience is not None
            and self.outcome.best_epoch is not None
            and number - self.outcome.best_epoch >= self.patience
        ):
            self.outcome.stopped_early = True
            self.model.stop_training = True
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("stop requested between epochs")


def fit_candidate(
    model: keras.Model,
    data: Dataset,
    *,
    epochs: int,
    batch_size: int,
    objective: str,
    direction: Literal["max", "min"],
    patience: int | None = None,
    outcome: FitOutcome | None = None,
    on_epoch: EpochCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    check_every_batches: int = 10,
    start_epoch: int = 0,
) -> FitOutcome:
    """Train a compiled ``model`` until it has run ``epochs`` epochs in total.

    Pass the previous ``outcome`` to continue a candidate (successive halving): training
    resumes at epoch ``outcome.epochs_run`` and the history/score carry on. A model loaded
    from another trial's checkpoint starts at ``start_epoch`` (epoch numbers continue). Raises
    `Cancelled` or `TrialFailed`; any other backend exception is wrapped in `TrialFailed`.
    """
    outcome = outcome or FitOutcome()
    if outcome.stopped_early or start_epoch + outcome.epochs_run >= epochs:
        return outcome
    callback = _TrialCallback(
        outcome,
        objective=objective,
        direction=direction,
        patience=patience,
        on_epoch=on_epoch,
        should_stop=should_stop,
        check_every_batches=check_every_batches,
    )
    error = ""
    try:
        model.fit(
            data.x_train,
            data.y_train,
            validation_data=(data.x_val, data.y_val),
            batch_size=batch_size,
            epochs=epochs,
            initial_epoch=start_epoch + outcome.epochs_run,
            callbacks=[callback],
            verbose=0,
            shuffle=True,
        )
    except (Cancelled, TrialFailed):
        raise
    except Exception as exc:  # OOM, shape errors... : fail this trial, not the search
        error = f"{type(exc).__name__}: {exc}"
    if error:
        # Raised outside the handler: chained to the original, the error would keep fit's
        # frames (model, optimizer, the batch) alive for as long as it is kept.
        raise TrialFailed(error)
    return outcome
