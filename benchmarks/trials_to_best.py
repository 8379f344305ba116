"""Trials (or epochs) our strategies need to reach random search's 30-trial best (issue 14).

Per dataset and seed, with the serial engine (`run_search`, dataset loaded once, the space of
`benchmarks._common.SPACE`):

1. ``random`` trains ``--trials`` trials x ``--epochs`` epochs. Its best epoch's validation
   objective (the engine's: val_accuracy for classification, val_loss, the MSE, for
   regression) less a tolerance is the **goal**: one validation row (1 / validation rows)
   for classification; ``--rel-tol`` (1 %) of the best for regression (goal = best x 1.01).
2. Random's own cost to the goal, from its trace: the trials it trained up to the first
   epoch that reached the goal (the trial holding that epoch counts), and the epochs it
   trained up to and including that epoch. With the tolerance, this is at most the trial
   that holds its best, often earlier.
3. ``tpe`` and ``evolution`` (trial strategies) run up to ``--trials`` trials and stop at
   the first epoch reaching the goal: **trials** to the goal, counted as for random.
4. ``asha`` and ``hyperband`` (eta 3, min_epochs 1, the last rung ``--epochs``) run until an
   epoch reaches the goal or they have trained as many epochs as random did in all its
   trials (not reached): **epochs** to the goal, in training order, a promotion counting
   only the epochs it adds; compared with random's epochs to the goal (step 2).

Ratios are per seed (ours / random's); a seed where a side did not reach the goal counts as
infinitely slow for the median over all seeds. Targets: tpe and evolution <= 1/2 of
random's trials; asha and hyperband <= 1/3 of random's epochs. Random always runs first (its
trace sets the goal), the others in rotating order; trial and epoch counts do not depend on
the machine's load (recorded anyway). Usage::

    python -m benchmarks.trials_to_best --seeds 5 --epochs 5
    python -m benchmarks.trials_to_best --datasets wine --seeds 1 --trials 5 --epochs 2

Prints the markdown for docs/benchmarks.md (pasted by hand: one current section per
measure) and writes the raw figures to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._common import Stat, digits_spec, machine_line, markdown_table

TRIAL_SIDES = ("tpe", "evolution")
EPOCH_SIDES = ("asha", "hyperband")
TARGETS = {"tpe": 1 / 2, "evolution": 1 / 2, "asha": 1 / 3, "hyperband": 1 / 3}
#: Evolution with a 30-trial budget: the default population of 20 would leave 10 evolved
#: trials, so the benchmark uses a population of 10 and tournaments of 3 (documented).
EVOLUTION_PARAMETERS = {"population_size": 10, "sample_size": 3}


# --- pure helpers (tests/benchmarks/test_trials_to_best.py) ---------------------------------


def goal_for(best: float, direction: str, *, row: float | None, rel_tol: float) -> float:
    """The value a side must reach: ``best`` less one row (max), or ``best`` x (1 + rel_tol)."""
    if direction == "max":
        if row is None:
            raise ValueError("a maximised objective needs the row tolerance")
        return best - row
    return best + abs(best) * rel_tol


def reaches(value: float, goal: float, direction: str) -> bool:
    return value >= goal - 1e-12 if direction == "max" else value <= goal + 1e-12


def first_reach(
    trace: Sequence[tuple[int, float]], goal: float, direction: str
) -> tuple[int, int] | None:
    """(trials, epochs) trained up to the first epoch of ``trace`` that reaches ``goal``.

    ``trace`` is (trial number, value) per epoch in training order; trials are the distinct
    trial numbers up to and including that epoch's, epochs the epochs up to it.
    """
    seen: set[int] = set()
    for i, (trial, value) in enumerate(trace):
        seen.add(trial)
        if reaches(value, goal, direction):
            return len(seen), i + 1
    return None


def best_value(trace: Sequence[tuple[int, float]], direction: str) -> float:
    values = [v for _, v in trace]
    return max(values) if direction == "max" else min(values)


def median_over_all(ratios: Sequence[float | None]) -> float:
    """Median of the per-seed ratios, a seed not reached (None) counting as infinity."""
    if not ratios:
        return math.nan
    return statistics.median(math.inf if r is None else r for r in ratios)


def verdict(median: float, target: float) -> str:
    return "met" if median <= target + 1e-9 else "missed"


# --- the searches ---------------------------------------------------------------------------


class Trace:
    """Every epoch's objective value with its trial number; stops at a goal or an epoch cap."""

    def __init__(
        self,
        objective: str,
        direction: str,
        goal: float | None = None,
        cap: int | None = None,
    ) -> None:
        self.objective = objective
        self.direction = direction
        self.goal = goal
        self.cap = cap
        self.points: list[tuple[int, float]] = []
        self.hit = False

    def should_stop(self) -> bool:
        return self.hit or (self.cap is not None and len(self.points) >= self.cap)

    def trial_started(self, trial: Any) -> None:
        pass

    def epoch_finished(self, trial_number: int, epoch: int, metrics: dict[str, float]) -> None:
        value = float(metrics.get(self.objective, math.nan))
        if math.isnan(value):
            value = -math.inf if self.direction == "max" else math.inf
        self.points.append((trial_number, value))
        if self.goal is not None and reaches(value, self.goal, self.direction):
            self.hit = True

    def trial_finished(self, trial: Any) -> None:
        pass


def spec_for(dataset: str, strategy: str, trials: int, epochs: int, seed: int) -> dict[str, Any]:
    extra: dict[str, Any] = EVOLUTION_PARAMETERS if strategy == "evolution" else {}
    return digits_spec(
        trials=trials,
        epochs=epochs,
        batch_size=64,
        strategy=strategy,
        seed=seed,
        dataset_id=dataset,
        **extra,
    )


def search(data: Any, spec: dict[str, Any], trace: Trace) -> float:
    from app.nas.engine import run_search
    from app.nas.spec import NasSpec

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run_search(
            NasSpec.model_validate(spec),
            artifacts_dir=Path(tmp),
            dataset=data,
            reporter=trace,
            should_stop=trace.should_stop,
        )
        return time.perf_counter() - started


@dataclass
class SeedResult:
    dataset: str
    seed: int
    best: float
    goal: float
    random_trials: int
    random_epochs: int
    random_s: float
    #: side -> (trials, epochs) to the goal, or None (not reached); with what it trained
    reached: dict[str, list[int] | None] = field(default_factory=dict)
    trained: dict[str, list[int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)

    def ratio(self, side: str) -> float | None:
        got = self.reached.get(side)
        if got is None:
            return None
        if side in EPOCH_SIDES:
            return got[1] / self.random_epochs
        return got[0] / self.random_trials


def one_seed(
    dataset: str, data: Any, seed: int, args: argparse.Namespace, sides: list[str]
) -> SeedResult:
    from app.nas.spec import NasSpec

    probe = NasSpec.model_validate(spec_for(dataset, "random", 1, 1, 0))
    objective, direction = probe.resolved_objective, probe.direction
    row = 1 / len(data.y_val) if direction == "max" else None
    load = [os.getloadavg()[0]]
    rand = Trace(objective, direction)
    rand_s = search(data, spec_for(dataset, "random", args.trials, args.epochs, seed), rand)
    best = best_value(rand.points, direction)
    goal = goal_for(best, direction, row=row, rel_tol=args.rel_tol)
    own = first_reach(rand.points, goal, direction)
    assert own is not None  # its best epoch reaches its own goal
    result = SeedResult(dataset, seed, best, goal, own[0], own[1], rand_s)
    order = sides[seed % len(sides) :] + sides[: seed % len(sides)]
    for side in order:
        if side in EPOCH_SIDES:
            trace = Trace(objective, direction, goal, cap=len(rand.points))
            spec = spec_for(dataset, side, 500, args.epochs, seed)
        else:
            trace = Trace(objective, direction, goal)
            spec = spec_for(dataset, side, args.trials, args.epochs, seed)
        result.seconds[side] = search(data, spec, trace)
        at = first_reach(trace.points, goal, direction)
        result.reached[side] = list(at) if at is not None else None
        result.trained[side] = [len({t for t, _ in trace.points}), len(trace.points)]
    load.append(os.getloadavg()[0])
    result.load = load
    return result


# --- report ---------------------------------------------------------------------------------


def seed_line(r: SeedResult) -> str:
    cells = []
    for side, got in r.reached.items():
        unit = "ep." if side in EPOCH_SIDES else "trials"
        idx = 1 if side in EPOCH_SIDES else 0
        if got is None:
            cells.append(f"{side} not reached ({r.trained[side][idx]} {unit})")
        else:
            cells.append(f"{side} {got[idx]} {unit} = {r.ratio(side):.2f}")
    return (
        f"{r.dataset} seed {r.seed}: random best {r.best:.4f}, goal {r.goal:.4f}, reached at "
        f"trial {r.random_trials} / epoch {r.random_epochs}; " + "; ".join(cells) + f" (load "
        f"{r.load[0]:.2f} -> {r.load[-1]:.2f})"
    )


def report(results: Sequence[SeedResult], sides: Sequence[str], args: argparse.Namespace) -> str:
    rows = []
    for dataset in args.datasets.split(","):
        mine = [r for r in results if r.dataset == dataset]
        if not mine:
            continue
        for side in sides:
            epochs = side in EPOCH_SIDES
            idx = 1 if epochs else 0
            hits = [r.reached.get(side) for r in mine]
            ours = [hit[idx] for hit in hits if hit is not None]
            base = [r.random_epochs if epochs else r.random_trials for r in mine]
            ratios = [r.ratio(side) for r in mine]
            med = median_over_all(ratios)
            rows.append(
                [
                    dataset,
                    f"{side} ({'epochs' if epochs else 'trials'})",
                    f"{len(ours)}/{len(mine)}",
                    Stat([float(x) for x in base]).cell("{:.0f}"),
                    Stat([float(x) for x in ours]).cell("{:.0f}"),
                    Stat([x for x in ratios if x is not None]).cell(),
                    f"{med:.2f}",
                    f"<= {TARGETS[side]:.2f}: {verdict(med, TARGETS[side])}",
                ]
            )
    table = markdown_table(
        [
            "dataset",
            "side (counted in)",
            "seeds reaching the goal",
            "random's count to the goal",
            "side's count (seeds that reached)",
            "ratio (seeds that reached)",
            "median ratio, all seeds (not reached = inf)",
            "target",
        ],
        rows,
    )
    loads = [x for r in results for x in r.load]
    return (
        f"{machine_line()}\n\n{args.trials} trials x {args.epochs} epochs for random; batch "
        f"size 64; seeds 0-{args.seeds - 1}; tolerance: one validation row (classification), "
        f"{args.rel_tol:.0%} of the best val_loss (regression); 1-minute load average "
        f"{min(loads):.2f}-{max(loads):.2f}.\n\n{table}\n\n"
        + "\n".join(f"- {seed_line(r)}" for r in results)
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--datasets", default="digits,breast_cancer,wine,diabetes")
    parser.add_argument("--sides", default=",".join(TRIAL_SIDES + EPOCH_SIDES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rel-tol", type=float, default=0.01)
    parser.add_argument("--json", default="/tmp/trials_to_best.json")
    args = parser.parse_args(argv)
    from app.nas.datasets import load_dataset

    sides = [s for s in args.sides.split(",") if s]
    results: list[SeedResult] = []
    for seed in range(args.seeds):  # seed-major, so a cut-short run covers every dataset
        for dataset in args.datasets.split(","):
            data = load_dataset(dataset, validation_split=0.2, seed=0)
            results.append(one_seed(dataset, data, seed, args, sides))
            print(seed_line(results[-1]), flush=True)
            Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=1))
    print("\n" + report(results, sides, args), flush=True)


if __name__ == "__main__":
    main()
