"""Resident memory of a worker-like process over many consecutive trials.

Like the worker: the search runs in a thread (``asyncio.to_thread(run_search, ...)``) with a
reporter called from that thread, one search after another in the same process. Each repeat
is one 100-trial search (digits, 1 epoch per trial, the benchmark space); RSS is sampled after
trials 1, 10 and the last. Growth is measured from trial 10 (after allocator and keras caches
have settled) to the end, and over all repeats from the first repeat's trial 10. Usage::

    python -m benchmarks.worker_rss --repeats 3 --trials 100
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from app.nas.datasets import load_dataset
from app.nas.engine import run_search
from app.nas.records import TrialRecord, TrialStart
from app.nas.spec import NasSpec
from benchmarks._common import Stat, append_section, digits_spec, markdown_table, rss_mib, stopwatch

TARGET_MIB = 50.0


class RssReporter:
    """Samples this process's RSS when given trial counts finish."""

    def __init__(self, marks: set[int]) -> None:
        self.marks = marks
        self.samples: dict[int, float] = {}
        self.finished = 0

    def trial_started(self, trial: TrialStart) -> None:
        pass

    def epoch_finished(self, trial_number: int, epoch: int, metrics: dict[str, float]) -> None:
        pass

    def trial_finished(self, trial: TrialRecord) -> None:
        self.finished += 1
        if self.finished in self.marks:
            self.samples[self.finished] = rss_mib()


async def one_search(spec: NasSpec, reporter: RssReporter) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        result = await asyncio.to_thread(
            run_search, spec, artifacts_dir=Path(tmp), reporter=reporter
        )
    return len(result.trials)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    load_dataset("digits", validation_split=0.2, seed=0)
    start = rss_mib()
    first_10: float | None = None
    growth, per_trial, seconds = Stat(), Stat(), Stat()
    rows = []
    for repeat in range(args.repeats):
        spec = NasSpec.model_validate(
            digits_spec(trials=args.trials, epochs=1, batch_size=args.batch_size, seed=repeat)
        )
        reporter = RssReporter({1, 10, args.trials})
        with stopwatch() as t:
            n = asyncio.run(one_search(spec, reporter))
        s = reporter.samples
        first_10 = s[10] if first_10 is None else first_10
        growth.add(s[args.trials] - s[10])
        per_trial.add(t[0] / n)
        seconds.add(t[0])
        rows.append(
            [
                repeat + 1,
                n,
                f"{s[1]:.0f}",
                f"{s[10]:.0f}",
                f"{s[args.trials]:.0f}",
                f"{s[args.trials] - s[10]:+.1f}",
                f"{t[0] / n:.2f}",
            ]
        )
        print(f"repeat {repeat + 1}: {rows[-1]}", flush=True)
    end = rss_mib()
    assert first_10 is not None
    total = end - first_10
    table = markdown_table(
        [
            "search",
            "trials",
            "RSS after 1 (MiB)",
            "after 10",
            "at the end",
            "growth 10 -> end",
            "s/trial",
        ],
        rows,
    )
    body = (
        f"{args.repeats} consecutive {args.trials}-trial searches in one process, each in a "
        f"thread as the worker runs them; digits, 1 epoch per trial, batch size "
        f"{args.batch_size}. RSS before the first search (imports and data loaded): "
        f"{start:.0f} MiB.\n\n{table}\n\n"
        f"Growth trial 10 -> end of a search: median (min-max) {growth.cell('{:+.1f}')} MiB "
        f"(target < {TARGET_MIB:.0f} MiB); over all {args.repeats * args.trials} trials "
        f"(first search's trial 10 -> last): {total:+.1f} MiB; "
        f"time per trial {per_trial.cell()} s."
    )
    append_section(
        "Worker RSS over consecutive trials (`benchmarks/worker_rss.py`)",
        body,
        write=not args.no_doc,
    )


if __name__ == "__main__":
    main()
