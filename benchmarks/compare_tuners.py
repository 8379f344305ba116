"""Our engine vs KerasTuner RandomSearch vs Optuna (TPE + MedianPruner) on the same search.

All sides search the same space (`benchmarks._common.SPACE`: 1-3 hidden levels of
BatchNormalization -> Dense, neurons from the same choices, a per-layer activation, one
learning rate), train on the same digits split with the same epochs, batch size and number of
trials, and are scored by the best epoch's val_accuracy (as Cerebros and KerasTuner rank).

* ``engine``: `run_search` in-process, strategy random, artifacts in a temporary folder.
* ``kerastuner``: `keras_tuner.RandomSearch` with a HyperModel building that model.
* ``optuna``: TPE sampler + MedianPruner driving the same Keras training, pruning from an
  epoch-end callback; pruned trials count as trials (they are cheaper, as pruning intends).

Every trial of every side ends with ``keras.backend.clear_session(free_memory=True)``, as the
engine does. Usage::

    python -m benchmarks.compare_tuners --repeats 3 --trials 10 --epochs 5
    python -m benchmarks.compare_tuners --sides engine --threads 2,1   # thread setting A/B
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.nas.backend import keras
from app.nas.datasets import Dataset, load_dataset
from app.nas.engine import run_search
from app.nas.spec import NasSpec
from benchmarks._common import SPACE, Stat, append_section, digits_spec, markdown_table, stopwatch

#: (trials per minute, best val_accuracy) of one side in one repeat.
Outcome = tuple[float, float]


def build_mlp(
    data: Dataset, layers: list[tuple[int, str]], learning_rate: float, seed: int
) -> keras.Model:
    """The model the engine builds for a one-unit-per-level architecture, compiled alike.

    With one unit per level, Cerebros' predecessor rule connects each level to *every*
    earlier level (input included), so each level reads the concatenation of all earlier
    outputs (a densely connected chain), then BatchNormalization -> Dense.
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(data.input_dim,))
    outputs_so_far = [inputs]
    widths = [*layers, (data.n_classes, "softmax")]
    for neurons, activation in widths:
        merged = (
            keras.layers.Concatenate()(outputs_so_far)
            if len(outputs_so_far) > 1
            else outputs_so_far[0]
        )
        normed = keras.layers.BatchNormalization()(merged)
        outputs_so_far.append(keras.layers.Dense(neurons, activation=activation)(normed))
    outputs = outputs_so_far[-1]
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    return model


def run_engine(data: Dataset, trials: int, epochs: int, batch_size: int, seed: int) -> Outcome:
    spec = NasSpec.model_validate(
        digits_spec(trials=trials, epochs=epochs, batch_size=batch_size, seed=seed)
    )
    with tempfile.TemporaryDirectory() as tmp, stopwatch() as t:
        result = run_search(spec, artifacts_dir=Path(tmp), dataset=data)
    assert result.best is not None and result.best.score is not None
    return len(result.trials) / (t[0] / 60), result.best.score


def sample_mlp(choose: Callable[[str, Any], Any]) -> tuple[list[tuple[int, str]], float]:
    """Layers (neurons, activation) and learning rate drawn with a tuner's categorical
    `choose(name, options)`: the same names and choices for KerasTuner and Optuna."""
    n_layers = choose("layers", SPACE["layers"])
    layers = [
        (choose(f"neurons_{i}", SPACE["neurons"]), choose(f"activation_{i}", SPACE["activation"]))
        for i in range(n_layers)
    ]
    return layers, choose("learning_rate", SPACE["learning_rate"])


def run_kerastuner(data: Dataset, trials: int, epochs: int, batch_size: int, seed: int) -> Outcome:
    import keras_tuner as kt

    class CerebrosLikeHyperModel(kt.HyperModel):
        def build(self, hp: kt.HyperParameters) -> keras.Model:
            layers, lr = sample_mlp(hp.Choice)
            return build_mlp(data, layers, lr, seed)

        def fit(self, hp: kt.HyperParameters, model: keras.Model, *args: Any, **kw: Any) -> Any:
            history = model.fit(*args, **kw)
            keras.backend.clear_session(free_memory=True)
            return history

    with tempfile.TemporaryDirectory() as tmp, stopwatch() as t:
        tuner = kt.RandomSearch(
            CerebrosLikeHyperModel(),
            objective="val_accuracy",
            max_trials=trials,
            seed=seed,
            directory=tmp,
            project_name="bench",
            overwrite=True,
        )
        tuner.search(
            data.x_train,
            data.y_train,
            validation_data=(data.x_val, data.y_val),
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
        )
        done = [t for t in tuner.oracle.trials.values() if t.score is not None]
        best = max(t.score for t in done)
    return len(done) / (t[0] / 60), float(best)


def run_optuna(data: Dataset, trials: int, epochs: int, batch_size: int, seed: int) -> Outcome:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    class Pruning(keras.callbacks.Callback):
        def __init__(self, trial: optuna.Trial) -> None:
            super().__init__()
            self.trial = trial

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.trial.report(float((logs or {})["val_accuracy"]), epoch)
            if self.trial.should_prune():
                raise optuna.TrialPruned()

    def objective(trial: optuna.Trial) -> float:
        layers, lr = sample_mlp(trial.suggest_categorical)
        model = build_mlp(data, layers, lr, seed)
        try:
            history = model.fit(
                data.x_train,
                data.y_train,
                validation_data=(data.x_val, data.y_val),
                epochs=epochs,
                batch_size=batch_size,
                shuffle=True,
                verbose=0,
                callbacks=[Pruning(trial)],
            )
        finally:
            keras.backend.clear_session(free_memory=True)
        return float(max(history.history["val_accuracy"]))

    with stopwatch() as t:
        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(),
        )
        study.optimize(objective, n_trials=trials)
    return len(study.trials) / (t[0] / 60), float(study.best_value)


SIDES: dict[str, Callable[[Dataset, int, int, int, int], Outcome]] = {
    "engine": run_engine,
    "kerastuner": run_kerastuner,
    "optuna": run_optuna,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sides", default="engine,kerastuner,optuna")
    parser.add_argument(
        "--threads", default="", help="comma-separated torch thread counts to A/B (engine)"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not append to the docs")
    args = parser.parse_args(argv)
    logging.getLogger("keras_tuner").setLevel(logging.WARNING)
    import torch

    data = load_dataset("digits", validation_split=0.2, seed=0)
    threads = [int(x) for x in args.threads.split(",") if x] or [torch.get_num_threads()]
    sides = [(name, th) for name in args.sides.split(",") for th in threads]
    label = {s: s[0] if len(threads) == 1 else f"{s[0]} ({s[1]} thr)" for s in sides}
    speed = {s: Stat() for s in sides}
    accuracy = {s: Stat() for s in sides}
    for repeat in range(args.repeats):
        # Rotate the order each repeat so no side always runs first (warm caches, neighbours).
        order = sides[repeat % len(sides) :] + sides[: repeat % len(sides)]
        for side in order:
            torch.set_num_threads(side[1])
            per_min, best = SIDES[side[0]](data, args.trials, args.epochs, args.batch_size, repeat)
            speed[side].add(per_min)
            accuracy[side].add(best)
            print(
                f"repeat {repeat + 1}: {label[side]:>20}: {per_min:6.2f} trials/min, best "
                f"val_accuracy {best:.4f}",
                flush=True,
            )
    base = sides[0]
    rows = []
    for side in sides:
        ratio = Stat([a / b for a, b in zip(speed[base].values, speed[side].values, strict=True)])
        rows.append([label[side], speed[side].cell(), accuracy[side].cell("{:.4f}"), ratio.cell()])
    table = markdown_table(
        ["side", "trials/min", "best val_accuracy", f"{label[base]} speed ÷ side (per repeat)"],
        rows,
    )
    body = (
        f"{args.trials} trials x {args.epochs} epochs, batch size {args.batch_size}, digits "
        f"(1437 train / 360 val rows), {args.repeats} repeats (seed = repeat index), sides "
        "in rotating order within each repeat. Cells: median (min-max) over the repeats.\n\n"
        f"{table}"
    )
    append_section(
        "Engine vs KerasTuner vs Optuna (`benchmarks/compare_tuners.py`)"
        if len(threads) == 1
        else "Engine speed: torch threads (`benchmarks/compare_tuners.py --threads`)",
        body,
        write=not args.no_doc,
    )


if __name__ == "__main__":
    main()
