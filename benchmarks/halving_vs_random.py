"""Epochs successive halving needs to reach the best val_accuracy of a 30-trial random search.

Per repeat (seed = repeat index): random search trains ``--trials`` candidates for
``--epochs`` epochs each and its best val_accuracy (best epoch of the best trial) is the
target. Successive halving (eta 3, min_epochs 1, last rung at ``--epochs``) then runs over a
pool of ``--pool`` candidates; a reporter counts every epoch trained, in order, and notes the
count at which any epoch's val_accuracy first reaches the target. The two sides alternate
order between repeats. Usage::

    python -m benchmarks.halving_vs_random --repeats 3 --trials 30 --epochs 9 --pool 81
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from app.nas.datasets import load_dataset
from app.nas.engine import run_search
from app.nas.records import TrialRecord, TrialStart
from app.nas.spec import NasSpec
from benchmarks._common import Stat, append_section, digits_spec, markdown_table, stopwatch


class EpochCounter:
    """Keeps every finished epoch's val_accuracy, in the order the search trains them."""

    def __init__(self) -> None:
        self.trace: list[float] = []

    @property
    def epochs(self) -> int:
        return len(self.trace)

    def reached_at(self, goal: float) -> int | None:
        """Epochs trained when val_accuracy first reached ``goal`` (None if never)."""
        return next((i + 1 for i, v in enumerate(self.trace) if v >= goal - 1e-9), None)

    def trial_started(self, trial: TrialStart) -> None:
        pass

    def epoch_finished(self, trial_number: int, epoch: int, metrics: dict[str, float]) -> None:
        self.trace.append(metrics.get("val_accuracy", float("-inf")))

    def trial_finished(self, trial: TrialRecord) -> None:
        pass


def search(spec: dict[str, object], counter: EpochCounter) -> tuple[float, float]:
    """Run one search; returns (best score, seconds)."""
    with tempfile.TemporaryDirectory() as tmp, stopwatch() as t:
        result = run_search(NasSpec.model_validate(spec), artifacts_dir=Path(tmp), reporter=counter)
    assert result.best is not None and result.best.score is not None
    return result.best.score, t[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--pool", type=int, default=81)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    load_dataset("digits", validation_split=0.2, seed=0)
    random_epochs, random_best, sh_needed, sh_total, sh_best, ratio = (Stat() for _ in range(6))
    random_s, sh_s = Stat(), Stat()
    rows = []
    for repeat in range(args.repeats):
        common = {"epochs": args.epochs, "batch_size": args.batch_size, "seed": repeat}
        rand_spec = digits_spec(trials=args.trials, **common)
        sh_spec = digits_spec(trials=args.pool, strategy="successive_halving", **common)
        # The goal only matters for scoring halving's epoch trace afterwards, so the side
        # order can alternate.
        rand, sh = EpochCounter(), EpochCounter()
        order = ["random", "sh"] if repeat % 2 == 0 else ["sh", "random"]
        for side in order:
            if side == "random":
                best, seconds = search(rand_spec, rand)
                random_best.add(best)
                random_epochs.add(rand.epochs)
                random_s.add(seconds)
            else:
                best, seconds = search(sh_spec, sh)
                sh_best.add(best)
                sh_total.add(sh.epochs)
                sh_s.add(seconds)
        goal = random_best.values[-1]
        reached = sh.reached_at(goal)
        if reached is not None:
            sh_needed.add(reached)
            ratio.add(reached / rand.epochs)
        rows.append(
            [
                repeat + 1,
                f"{goal:.4f} @ {rand.epochs}",
                f"{sh_best.values[-1]:.4f} @ {sh.epochs}",
                reached if reached is not None else "not reached",
                f"{reached / rand.epochs:.2f}" if reached is not None else "-",
            ]
        )
        print(f"repeat {repeat + 1}: {rows[-1]}", flush=True)
    table = markdown_table(
        [
            "repeat",
            "random: best @ epochs",
            "halving: best @ total epochs",
            "halving epochs to reach random's best",
            "ratio (target <= 0.33)",
        ],
        rows,
    )
    summary = markdown_table(
        ["measure", "median (min-max)"],
        [
            ["random best val_accuracy", random_best.cell("{:.4f}")],
            ["halving best val_accuracy", sh_best.cell("{:.4f}")],
            ["random epochs", random_epochs.cell("{:.0f}")],
            ["halving total epochs", sh_total.cell("{:.0f}")],
            [
                f"halving epochs to reach random's best ({len(sh_needed.values)}/"
                f"{args.repeats} reached)",
                sh_needed.cell("{:.0f}"),
            ],
            ["ratio halving/random epochs", ratio.cell()],
            ["random wall s", random_s.cell("{:.0f}")],
            ["halving wall s", sh_s.cell("{:.0f}")],
        ],
    )
    body = (
        f"Random: {args.trials} trials x {args.epochs} epochs. Successive halving: pool of "
        f"{args.pool}, eta 3, min_epochs 1, last rung {args.epochs} epochs. digits, batch size "
        f"{args.batch_size}, seed = repeat index, side order alternating per repeat. The "
        "halving count is the number of epochs trained (in the order it trains them) until "
        "one epoch's val_accuracy first reached random search's best.\n\n"
        f"{table}\n\n{summary}"
    )
    append_section(
        "Successive halving vs random search (`benchmarks/halving_vs_random.py`)",
        body,
        write=not args.no_doc,
    )


if __name__ == "__main__":
    main()
