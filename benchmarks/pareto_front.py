"""Accuracy vs parameters: hypervolume of NSGA-II's front vs random search's (issue 14).

Per seed, with the serial engine (`run_search`, digits loaded once, the space of
`benchmarks._common.SPACE`), ``nsga2`` and ``random`` each train ``--trials`` trials x
``--epochs`` epochs with the objectives ``val_accuracy`` (maximise; the trial's best epoch)
and ``params`` (trainable parameters, minimise); the two sides run in alternating order.
Each side's non-dominated completed trials (`app.nas.pareto.pareto_front`) give its front,
and its hypervolume (`app.nas.pareto.hypervolume_2d`) is taken in the plane
(val_accuracy, log10(params)) with the fixed reference point (0, ``REFERENCE_LOG10_PARAMS``
= 5, i.e. 100 000 parameters, above the largest network of the space on digits, ~81 000):
the area between the front and that point, accuracy from 0, log10(params) from 5 down.
Parameters are on a log scale so that halving the size counts the same at any size. With
accuracy from 0, every front's area is mostly the rectangle under its smallest network's
accuracy, so the script also prints the hypervolume from (``TIGHT_ACCURACY`` = 0.9, 5): the
part of the front above 90 % accuracy, where the fronts differ.

NSGA-II works in generations of ``parameters.population_size``; the first generation is the
seeded candidate sequence (random search's first architectures). With a 30-trial budget the
default population of 20 would leave 10 NSGA-II trials, so the benchmark uses
``--population`` (10: three generations). Reported: hypervolume per side, the ratio
nsga2/random per seed (target > 1), median and range. Usage::

    python -m benchmarks.pareto_front --seeds 5 --trials 30 --epochs 9

Prints the markdown for docs/benchmarks.md (pasted by hand).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.nas.pareto import Direction, hypervolume_2d, pareto_front
from benchmarks._common import Stat, digits_spec, machine_line, markdown_table

#: The reference point's log10(params): 100 000 parameters.
REFERENCE_LOG10_PARAMS = 5.0
REFERENCE = (0.0, REFERENCE_LOG10_PARAMS)
#: The second reference point's accuracy (see the module docstring).
TIGHT_ACCURACY = 0.9
DIRECTIONS: tuple[Direction, Direction] = ("maximize", "minimize")


def front_points(trials: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(val_accuracy, log10 params) of the non-dominated ones of (val_accuracy, params)."""
    points = [(acc, math.log10(params)) for acc, params in trials]
    return sorted({points[i] for i in pareto_front(points, DIRECTIONS)})


def hypervolume(
    trials: Sequence[tuple[float, float]], reference: tuple[float, float] = REFERENCE
) -> float:
    """Hypervolume of (val_accuracy, params) trials in (accuracy, log10 params) from REFERENCE."""
    return hypervolume_2d(front_points(trials), DIRECTIONS, reference)


def spec_for(strategy: str, trials: int, epochs: int, seed: int, population: int) -> dict[str, Any]:
    return digits_spec(
        trials=trials,
        epochs=epochs,
        batch_size=64,
        strategy=strategy,
        seed=seed,
        objectives=[{"name": "val_accuracy"}, {"name": "params", "direction": "minimize"}],
        population_size=population,
    )


def run_side(data: Any, spec: dict[str, Any]) -> tuple[list[tuple[float, float]], float]:
    """(val_accuracy, params) of every completed trial, and the wall seconds."""
    from app.nas.engine import run_search
    from app.nas.spec import NasSpec

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = run_search(NasSpec.model_validate(spec), artifacts_dir=Path(tmp), dataset=data)
        seconds = time.perf_counter() - started
    points = [
        (float(t.objectives["val_accuracy"]), float(t.objectives["params"]))
        for t in result.trials
        if t.status == "completed" and {"val_accuracy", "params"} <= t.objectives.keys()
    ]
    return points, seconds


def describe(points: Sequence[tuple[float, float]]) -> str:
    front = front_points(points)
    return ", ".join(f"{acc:.3f}@{10**lp:,.0f}" for acc, lp in front)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--population", type=int, default=10)
    args = parser.parse_args(argv)
    from app.nas.datasets import load_dataset

    data = load_dataset("digits", validation_split=0.2, seed=0)
    sides = ["nsga2", "random"]
    volumes = {s: Stat() for s in sides}
    sizes = {s: Stat() for s in sides}
    ratios = Stat()
    tight = {s: Stat() for s in sides}
    tight_ratios = Stat()
    tight_reference = (TIGHT_ACCURACY, REFERENCE_LOG10_PARAMS)
    lines = []
    loads: list[float] = []
    for seed in range(args.seeds):
        order = sides if seed % 2 == 0 else sides[::-1]
        got: dict[str, float] = {}
        cells = []
        loads.append(os.getloadavg()[0])
        for side in order:
            spec = spec_for(side, args.trials, args.epochs, seed, args.population)
            points, seconds = run_side(data, spec)
            got[side] = hypervolume(points)
            got[f"{side}-tight"] = hypervolume(points, tight_reference)
            volumes[side].add(got[side])
            tight[side].add(got[f"{side}-tight"])
            sizes[side].add(len(front_points(points)))
            cells.append(
                f"{side} HV {got[side]:.4f} / {got[f'{side}-tight']:.4f} ({len(points)} "
                f"trials, {seconds:.0f} s; front {describe(points)})"
            )
        loads.append(os.getloadavg()[0])
        ratios.add(got["nsga2"] / got["random"])
        tight_ratios.add(got["nsga2-tight"] / max(got["random-tight"], 1e-12))
        line = (
            f"seed {seed}: " + "; ".join(cells) + f"; ratio {ratios.values[-1]:.3f} / "
            f"{tight_ratios.values[-1]:.3f} (load "
            f"{loads[-2]:.2f} -> {loads[-1]:.2f})"
        )
        lines.append(line)
        print(line, flush=True)
    table = markdown_table(
        ["side", "hypervolume", f"hypervolume from ({TIGHT_ACCURACY}, 5)", "front size (trials)"],
        [
            [s, volumes[s].cell("{:.4f}"), tight[s].cell("{:.4f}"), sizes[s].cell("{:.0f}")]
            for s in sides
        ],
    )
    met = "met" if ratios.median > 1 else "missed"
    body = (
        f"{machine_line()}\n\nDigits, {args.trials} trials x {args.epochs} epochs per side, "
        f"batch size 64, NSGA-II population {args.population}; objectives val_accuracy (max) "
        f"and params (min); hypervolume in (val_accuracy, log10 params) from the reference "
        f"point {REFERENCE} (accuracy 0, 10^{REFERENCE_LOG10_PARAMS:.0f} parameters); seeds "
        f"0-{args.seeds - 1}, sides alternating; 1-minute load average "
        f"{min(loads):.2f}-{max(loads):.2f}.\n\n{table}\n\n**Ratio nsga2/random per seed: "
        f"{ratios.cell('{:.3f}')}** (> 1: {met}); from ({TIGHT_ACCURACY}, 5): "
        f"{tight_ratios.cell('{:.3f}')}. Per seed: HV / HV from ({TIGHT_ACCURACY}, 5).\n\n"
        + "\n".join(f"- {x}" for x in lines)
    )
    print("\n" + body, flush=True)


if __name__ == "__main__":
    main()
