"""Memory growth of the NAS engine over many trials.

Runs 100 small trials on digits (1 epoch each, tiny architectures) and prints the resident
set size at the start, after 10 trials and at the end, plus the growth and time per trial.
Usage: ``python -m benchmarks.nas_memory [n_trials]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from app.nas.engine import run_search
from app.nas.records import TrialRecord, TrialStart
from app.nas.spec import NasSpec


def rss_mib() -> float:
    """Current resident set size (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class RssReporter:
    """Samples RSS after given trial counts."""

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


def main(n_trials: int = 100) -> None:
    spec = NasSpec.model_validate(
        {
            "dataset_id": "digits",
            "search_space": {
                "minimum_levels": 1,
                "maximum_levels": 3,
                "minimum_units_per_level": 1,
                "maximum_units_per_level": 2,
                "minimum_neurons_per_unit": 4,
                "maximum_neurons_per_unit": 32,
                "learning_rate": [0.001, 0.003, 0.01],
            },
            "budget": {"max_trials": n_trials},
            "parameters": {"epochs": 1, "batch_size": 64},
        }
    )
    # Load the data and import everything first so "start" measures the steady state.
    from app.nas.datasets import load_dataset

    load_dataset("digits", validation_split=0.2, seed=0)
    start = rss_mib()
    reporter = RssReporter({10, n_trials})
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = run_search(spec, artifacts_dir=Path(tmp), reporter=reporter)
    elapsed = time.perf_counter() - t0
    end = rss_mib()
    after_10 = reporter.samples.get(10, float("nan"))
    print(
        f"trials: {len(result.trials)} ({result.status}), total {elapsed:.1f} s, "
        f"{elapsed / max(1, len(result.trials)):.2f} s/trial"
    )
    print(f"RSS start:        {start:8.1f} MiB")
    print(f"RSS after 10:     {after_10:8.1f} MiB")
    print(f"RSS at the end:   {end:8.1f} MiB")
    print(f"growth total:     {end - start:8.1f} MiB")
    print(
        f"growth 10 -> end: {end - after_10:8.1f} MiB "
        f"({(end - after_10) / max(1, n_trials - 10) * 1024:.0f} KiB/trial)"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
