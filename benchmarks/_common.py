"""Shared helpers for the ML benchmarks: timing, median/spread and the docs table.

Every benchmark runs its sides alternately within each repeat (A, B, A, B...) so that noise
from other work on the shared cores hits all sides alike, then reports the median and the
min-max spread over the repeats and appends a dated section to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import datetime as _dt
import os
import shlex
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DOC",
    "Stat",
    "append_section",
    "command_line",
    "digits_spec",
    "machine_line",
    "markdown_table",
    "rss_mib",
    "stopwatch",
]

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


@dataclass
class Stat:
    """Values of one measure over the repeats."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(float(value))

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def cell(self, fmt: str = "{:.2f}") -> str:
        """``median (min-max)`` for a table cell."""
        if not self.values:
            return "n/a"
        if len(self.values) == 1:
            return fmt.format(self.values[0])
        low, high = min(self.values), max(self.values)
        return f"{fmt.format(self.median)} ({fmt.format(low)}-{fmt.format(high)})"


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` is the elapsed wall time in seconds."""
    box: list[float] = []
    started = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - started)


def rss_mib(pid: int | None = None) -> float:
    """Resident set size of ``pid`` (default: this process), in MiB (Linux /proc)."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def digits_spec(
    *,
    trials: int,
    epochs: int,
    batch_size: int,
    strategy: str = "random",
    seed: int = 0,
    dataset_id: str = "digits",
    objectives: list[dict[str, str]] | None = None,
    **parameters: object,
) -> dict[str, object]:
    """The benchmark search: digits (or ``dataset_id``), 1-3 hidden Dense layers, the same
    choices everywhere; ``parameters`` adds strategy settings (population_size...).

    Uses the simple search-space form, so each hidden level has one unit
    (BatchNormalization -> Dense), which a KerasTuner/Optuna model can reproduce exactly.
    """
    spec: dict[str, object] = {
        "dataset_id": dataset_id,
        "search_space": SPACE,
        "budget": {"max_trials": trials},
        "parameters": {
            "strategy": strategy,
            "epochs": epochs,
            "batch_size": batch_size,
            "seed": seed,
            **parameters,
        },
    }
    if objectives is not None:
        spec["objectives"] = objectives
    return spec


#: The search space every side of every benchmark draws from.
SPACE: dict[str, list[int] | list[str] | list[float]] = {
    "layers": [1, 2, 3],
    "neurons": [16, 32, 64, 128],
    "activation": ["relu", "tanh"],
    "learning_rate": [0.001, 0.003, 0.01],
}


def machine_line() -> str:
    """Date, ``nproc``, backend and torch threads, for the section header."""
    threads = "?"
    try:
        import torch

        threads = str(torch.get_num_threads())
    except ImportError:  # pragma: no cover
        pass
    return (
        f"Date {_dt.date.today().isoformat()}, `nproc` = {os.cpu_count()}, "
        f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND', 'torch')}, torch threads {threads} "
        "(the two cores are shared with other work, so figures are noisy)."
    )


def command_line() -> str:
    """The exact command that was run, as ``python -m benchmarks.<name> args``."""
    module = Path(sys.argv[0]).stem
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    env = " ".join(f"{k}={os.environ[k]}" for k in ("CEREBROS_TORCH_THREADS",) if k in os.environ)
    return " ".join(x for x in (env, f"python -m benchmarks.{module}", args) if x)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def append_section(title: str, body: str, *, doc: Path = DOC, write: bool = True) -> str:
    """Append ``## title`` with the machine line, command and ``body`` to the docs file."""
    text = (
        f"\n## {title}\n\n{machine_line()}\n\nCommand:\n\n```\n{command_line()}\n```\n\n"
        f"{body.strip()}\n"
    )
    print(text)
    if write:
        with doc.open("a") as fh:
            fh.write(text)
    return text
