"""Our engine vs KerasTuner RandomSearch vs Optuna (TPE + MedianPruner) on the same search.

All sides search the same space (`benchmarks._common.SPACE`: 1-3 hidden levels of
BatchNormalization -> Dense, neurons from the same choices, a per-layer activation, one
learning rate), train on the same digits split with the same epochs, batch size and number of
trials, and are scored by the best epoch's val_accuracy (as Cerebros and KerasTuner rank).

* ``engine``: `run_search` in-process, strategy random, artifacts in a temporary folder.
* ``kerastuner``: `keras_tuner.RandomSearch` with a HyperModel building that model.
* ``optuna``: TPE sampler + MedianPruner driving the same Keras training, pruning from an
  epoch-end callback; pruned trials count as trials (they are cheaper, as pruning intends).
* ``engine-tpe``: `run_search` with strategy tpe (issue 14: same space and budget as
  Optuna's own loop and KerasTuner's Bayesian oracle).
* ``optuna-tpe``: Optuna's own ``study.optimize`` loop with its default `TPESampler` and no
  pruner, every trial trained to the full epochs.
* ``kerastuner-bayes``: `keras_tuner.BayesianOptimization` (defaults) with the same HyperModel.

Every trial of every side ends with ``keras.backend.clear_session(free_memory=True)``, as the
engine does. Usage::

    python -m benchmarks.compare_tuners --repeats 3 --trials 10 --epochs 5
    python -m benchmarks.compare_tuners --sides engine --threads 2,1   # thread setting A/B
    python -m benchmarks.compare_tuners --sides engine-tpe,optuna-tpe,kerastuner-bayes \
        --repeats 3 --trials 30 --epochs 5

The 1-minute load average is read before and after every side's search and printed with it.

``--reach`` (issue 14's headline): per seed, KerasTuner RandomSearch runs ``--trials`` x
``--epochs`` first (its best val_accuracy, less one validation row, is the goal; its own time
is when one of its epochs first reached the goal), then our strategies (``--reach-sides``,
default asha, tpe, evolution; in rotating order) run the same space with the serial engine
and stop as soon as one epoch reaches the goal, or at KerasTuner's budget (the same trials for
trial strategies; the same epochs, trials x epochs, for asha). Wall time counts from the
search's start (dataset already loaded on every side)::

    python -m benchmarks.compare_tuners --reach --repeats 5 --trials 30 --epochs 10
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import tempfile
import time
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


def run_engine(
    data: Dataset, trials: int, epochs: int, batch_size: int, seed: int, strategy: str = "random"
) -> Outcome:
    spec = NasSpec.model_validate(
        digits_spec(
            trials=trials, epochs=epochs, batch_size=batch_size, seed=seed, strategy=strategy
        )
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


def run_kerastuner(
    data: Dataset, trials: int, epochs: int, batch_size: int, seed: int, oracle: str = "random"
) -> Outcome:
    """KerasTuner's RandomSearch (``oracle="random"``) or BayesianOptimization (``"bayes"``)."""
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
        tuner_class = kt.BayesianOptimization if oracle == "bayes" else kt.RandomSearch
        tuner = tuner_class(
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


def run_optuna(
    data: Dataset, trials: int, epochs: int, batch_size: int, seed: int, prune: bool = True
) -> Outcome:
    """Optuna's TPE with the MedianPruner, or (``prune=False``) no pruner: full trials."""
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
            pruner=optuna.pruners.MedianPruner() if prune else optuna.pruners.NopPruner(),
        )
        study.optimize(objective, n_trials=trials)
    return len(study.trials) / (t[0] / 60), float(study.best_value)


class ReachTrace:
    """Epoch val_accuracy with its time since the search's start; stops at a goal or a cap."""

    def __init__(self, goal: float | None = None, max_epochs: int | None = None) -> None:
        self.started = time.perf_counter()
        self.points: list[tuple[float, float]] = []
        self.goal = goal
        self.max_epochs = max_epochs

    def add(self, value: float) -> None:
        self.points.append((time.perf_counter() - self.started, value))

    def reached(self, goal: float) -> tuple[float, int] | None:
        """(seconds, epochs trained) when an epoch first reached ``goal``."""
        for i, (at, value) in enumerate(self.points):
            if value >= goal - 1e-9:
                return at, i + 1
        return None

    def should_stop(self) -> bool:
        if self.goal is not None and self.reached(self.goal) is not None:
            return True
        return self.max_epochs is not None and len(self.points) >= self.max_epochs

    # ProgressReporter
    def trial_started(self, trial: Any) -> None:
        pass

    def epoch_finished(self, trial_number: int, epoch: int, metrics: dict[str, float]) -> None:
        self.add(metrics.get("val_accuracy", float("-inf")))

    def trial_finished(self, trial: Any) -> None:
        pass


def reach_kerastuner(
    data: Dataset, trials: int, epochs: int, batch_size: int, seed: int
) -> ReachTrace:
    """KerasTuner RandomSearch, every epoch's val_accuracy timed."""
    import keras_tuner as kt

    trace = ReachTrace()

    class Timed(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            trace.add(float((logs or {})["val_accuracy"]))

    class CerebrosLikeHyperModel(kt.HyperModel):
        def build(self, hp: kt.HyperParameters) -> keras.Model:
            layers, lr = sample_mlp(hp.Choice)
            return build_mlp(data, layers, lr, seed)

        def fit(self, hp: kt.HyperParameters, model: keras.Model, *args: Any, **kw: Any) -> Any:
            kw["callbacks"] = [*kw.get("callbacks", []), Timed()]
            history = model.fit(*args, **kw)
            keras.backend.clear_session(free_memory=True)
            return history

    with tempfile.TemporaryDirectory() as tmp:
        trace.started = time.perf_counter()
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
    return trace


def reach_engine(
    data: Dataset, strategy: str, goal: float, trials: int, epochs: int, batch_size: int, seed: int
) -> ReachTrace:
    """Our strategy with the serial engine, stopped at the goal or at KerasTuner's budget."""
    spec = digits_spec(
        trials=500 if strategy in {"asha", "hyperband"} else trials,
        epochs=epochs,
        batch_size=batch_size,
        strategy=strategy,
        seed=seed,
    )
    trace = ReachTrace(goal=goal, max_epochs=trials * epochs)
    with tempfile.TemporaryDirectory() as tmp:
        trace.started = time.perf_counter()
        run_search(
            NasSpec.model_validate(spec),
            artifacts_dir=Path(tmp),
            dataset=data,
            reporter=trace,
            should_stop=trace.should_stop,
        )
    return trace


def reach_main(args: argparse.Namespace, data: Dataset) -> None:
    """Wall time of our strategies to reach KerasTuner RandomSearch's best (issue 14)."""
    row = 1 / len(data.y_val)
    ours = [s for s in args.reach_sides.split(",") if s]
    seconds: dict[str, Stat] = {s: Stat() for s in ["kerastuner", *ours]}
    ratios: dict[str, list[float | None]] = {s: [] for s in ours}
    lines = []
    # Warm both kinds of side once (first model build, keras/torch lazy setup), untimed.
    reach_kerastuner(data, 1, 1, args.batch_size, 999)
    reach_engine(data, "random", 2.0, 1, 1, args.batch_size, 999)
    for repeat in range(args.repeats):
        load_before = os.getloadavg()[0]
        kt_trace = reach_kerastuner(data, args.trials, args.epochs, args.batch_size, repeat)
        best = max(v for _, v in kt_trace.points)
        goal = best - row
        kt_at = kt_trace.reached(goal)
        assert kt_at is not None
        seconds["kerastuner"].add(kt_at[0])
        cells = [f"KerasTuner best {best:.4f}, goal reached at {kt_at[0]:.0f} s ({kt_at[1]} ep.)"]
        order = ours[repeat % len(ours) :] + ours[: repeat % len(ours)]
        for side in order:
            trace = reach_engine(
                data, side, goal, args.trials, args.epochs, args.batch_size, repeat
            )
            at = trace.reached(goal)
            if at is None:
                ratios[side].append(None)
                cells.append(f"{side}: not reached ({len(trace.points)} ep.)")
            else:
                seconds[side].add(at[0])
                ratios[side].append(at[0] / kt_at[0])
                cells.append(f"{side} {at[0]:.0f} s ({at[1]} ep.) = {at[0] / kt_at[0]:.2f}x")
        line = f"seed {repeat}: " + "; ".join(cells)
        line += f" (load {load_before:.2f} -> {os.getloadavg()[0]:.2f})"
        lines.append(line)
        print(line, flush=True)
    rows = []
    for side in ours:
        got = [r for r in ratios[side] if r is not None]
        # A seed where the side did not get there within KerasTuner's budget: counted as
        # infinitely slow for the median over all seeds.
        padded = sorted(got) + [float("inf")] * (len(ratios[side]) - len(got))
        rows.append(
            [
                side,
                f"{len(got)}/{len(ratios[side])}",
                seconds[side].cell("{:.0f}"),
                Stat(got).cell(),
                f"{padded[len(padded) // 2]:.2f}" if padded else "n/a",
            ]
        )
    table = markdown_table(
        [
            "side",
            "seeds reaching the goal",
            "s to the goal (seeds that reached it)",
            "÷ KerasTuner's s (seeds that reached it)",
            "median ÷ KerasTuner over all seeds (not reached = inf)",
        ],
        rows,
    )
    body = (
        f"KerasTuner RandomSearch {args.trials} trials x {args.epochs} epochs; goal: its best "
        f"val_accuracy less one validation row ({row:.4f}); KerasTuner's own time to the goal "
        f"{seconds['kerastuner'].cell('{:.0f}')} s. Batch size {args.batch_size}, digits, seed "
        f"= repeat index, {args.repeats} seeds; KerasTuner first in every seed (its goal stops "
        "the others), ours in rotating order.\n\n"
        + table
        + "\n\n"
        + "\n".join(f"- {line}" for line in lines)
    )
    print(body)


SIDES: dict[str, Callable[[Dataset, int, int, int, int], Outcome]] = {
    "engine": run_engine,
    "kerastuner": run_kerastuner,
    "optuna": run_optuna,
    "engine-tpe": functools.partial(run_engine, strategy="tpe"),
    "optuna-tpe": functools.partial(run_optuna, prune=False),
    "kerastuner-bayes": functools.partial(run_kerastuner, oracle="bayes"),
}


#: Sides of the model-based comparison (issue 14); with them the section gets its own title.
TUNED_SIDES = frozenset({"engine-tpe", "optuna-tpe", "kerastuner-bayes"})


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
    parser.add_argument("--reach", action="store_true", help="time to KerasTuner's best")
    parser.add_argument("--reach-sides", default="asha,tpe,evolution")
    args = parser.parse_args(argv)
    logging.getLogger("keras_tuner").setLevel(logging.WARNING)
    import torch

    data = load_dataset("digits", validation_split=0.2, seed=0)
    if args.reach:
        reach_main(args, data)
        return
    threads = [int(x) for x in args.threads.split(",") if x] or [torch.get_num_threads()]
    sides = [(name, th) for name in args.sides.split(",") for th in threads]
    label = {s: s[0] if len(threads) == 1 else f"{s[0]} ({s[1]} thr)" for s in sides}
    speed = {s: Stat() for s in sides}
    accuracy = {s: Stat() for s in sides}
    loads: dict[tuple[str, int], list[float]] = {s: [] for s in sides}
    for repeat in range(args.repeats):
        # Rotate the order each repeat so no side always runs first (warm caches, neighbours).
        order = sides[repeat % len(sides) :] + sides[: repeat % len(sides)]
        for side in order:
            torch.set_num_threads(side[1])
            before = os.getloadavg()[0]
            per_min, best = SIDES[side[0]](data, args.trials, args.epochs, args.batch_size, repeat)
            after = os.getloadavg()[0]
            loads[side] += [before, after]
            speed[side].add(per_min)
            accuracy[side].add(best)
            print(
                f"repeat {repeat + 1}: {label[side]:>20}: {per_min:6.2f} trials/min, best "
                f"val_accuracy {best:.4f} (load {before:.2f} -> {after:.2f})",
                flush=True,
            )
    base = sides[0]
    rows = []
    for side in sides:
        ratio = Stat([a / b for a, b in zip(speed[base].values, speed[side].values, strict=True)])
        rows.append(
            [
                label[side],
                speed[side].cell(),
                accuracy[side].cell("{:.4f}"),
                ratio.cell(),
                f"{min(loads[side]):.2f}-{max(loads[side]):.2f}",
            ]
        )
    table = markdown_table(
        [
            "side",
            "trials/min",
            "best val_accuracy",
            f"{label[base]} speed ÷ side (per repeat)",
            "1-min load avg (before/after each search)",
        ],
        rows,
    )
    body = (
        f"{args.trials} trials x {args.epochs} epochs, batch size {args.batch_size}, digits "
        f"(1437 train / 360 val rows), {args.repeats} repeats (seed = repeat index), sides "
        "in rotating order within each repeat. Cells: median (min-max) over the repeats.\n\n"
        f"{table}"
    )
    title = "Engine vs KerasTuner vs Optuna (`benchmarks/compare_tuners.py`)"
    if any(name in TUNED_SIDES for name, _ in sides):
        title = "Model-based search, same space and budget: tpe vs Optuna TPE vs KerasTuner Bayes"
    append_section(
        title
        if len(threads) == 1
        else "Engine speed: torch threads (`benchmarks/compare_tuners.py --threads`)",
        body,
        write=not args.no_doc,
    )


if __name__ == "__main__":
    main()
