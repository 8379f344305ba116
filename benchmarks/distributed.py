"""Distributed search (issue 13): 1 vs 2 worker processes, per-trial queue overhead, ASHA vs random.

``--part scaling`` (a and b): one real API process (auth off; used only to POST the runs) and
``cerebros worker --processes N`` (a supervisor and N worker processes, each its own
interpreter) on a fresh migrated database; this process only submits and polls Postgres, so
the load generator never shares the workers' or the API's event loops. Per repeat the sides
N=1 and N=2 run in turn (order flipped every repeat); each side starts its supervisor, waits
for its N workers to heartbeat, warms every process with a small run (imports, dataset),
then times one ``--trials`` x ``--epochs`` digits run (random strategy) from the run's first
trial start (``nas_trial_jobs.started_at``) to the run's ``finished_at``. The 1-minute load
average is read before and after each timed run.

Queue overhead, from ``nas_trial_jobs`` of the timed runs: ``started_at - queued_at`` of the
trials queued while fewer trials were running than there are workers (so a worker was idle
when the job arrived), and, per worker, the gap between a trial's ``finished_at`` and the
start of that worker's next trial. ``started_at`` is the claim's commit (before the dataset
lookup, the model build and ``fit``), so the build and compile are *not* in these figures;
``(finished_at - started_at) - duration_s`` (``duration_s``: build + compile + fit + the
inference measure, from `train_trial`) is reported too: the job's own work around training
(claim, dataset, cancel watcher, best-model bytes, the end transaction).

``--part asha`` (c): the serial engine (`run_search`, no queue) per seed: random search of
``--random-trials`` x ``--asha-epochs`` epochs gives the goal (its best val_accuracy); ASHA
(eta 3, min_epochs 1, last rung ``--asha-epochs``) then trains until one of its epochs
reaches the goal less one validation row (the same tolerance for both) or until it has
trained as many epochs as random did (not reached). Epochs are counted in training order,
promotions counting only the epochs they add. Sides alternate order per seed. Usage::

    python -m benchmarks.distributed --part scaling --repeats 3
    python -m benchmarks.distributed --part asha --seeds 5

Prints the markdown for docs/benchmarks.md (the section is pasted by hand: one current
section per measure).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from benchmarks._common import Stat, digits_spec, machine_line, markdown_table
from benchmarks._db import fresh_database
from tests.support.processes import api_server, service_env, start, stop

TARGET_SPEEDUP = 1.8
TARGET_OVERHEAD_MS = 20.0
TARGET_ASHA_RATIO = 1 / 3


def spread(values: Sequence[float]) -> str:
    """``median (min-max), n=N`` in whole ms."""
    if not values:
        return "n/a"
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f}), n={len(values)}"


def load1() -> float:
    return os.getloadavg()[0]


# --- (a), (b): 1 vs 2 worker processes ------------------------------------------------------


@dataclass
class TrialRow:
    trial: int
    worker: str
    queued_at: dt.datetime
    started_at: dt.datetime
    finished_at: dt.datetime
    duration_s: float


@dataclass
class SideRun:
    processes: int
    seconds: float
    trials: int
    load_before: float
    load_after: float
    rows: list[TrialRow] = field(default_factory=list)

    @property
    def per_min(self) -> float:
        return self.trials / self.seconds * 60

    def workers_used(self) -> int:
        return len({r.worker for r in self.rows})

    def idle_waits_ms(self) -> list[float]:
        """started_at - queued_at of trials queued while a worker was idle."""
        out = []
        for t in self.rows:
            busy = sum(
                1 for o in self.rows if o is not t and o.started_at <= t.queued_at < o.finished_at
            )
            if busy < self.processes:
                out.append((t.started_at - t.queued_at).total_seconds() * 1000)
        return out

    def gaps_ms(self) -> list[float]:
        """Per worker: next trial's started_at - this trial's finished_at."""
        by_worker: dict[str, list[TrialRow]] = defaultdict(list)
        for r in self.rows:
            by_worker[r.worker].append(r)
        out = []
        for rows in by_worker.values():
            rows.sort(key=lambda r: r.started_at)
            out += [
                (b.started_at - a.finished_at).total_seconds() * 1000
                for a, b in itertools.pairwise(rows)
            ]
        return out

    def in_job_ms(self) -> list[float]:
        """(finished_at - started_at) - duration_s: the job's work around train_trial."""
        return [
            ((r.finished_at - r.started_at).total_seconds() - r.duration_s) * 1000
            for r in self.rows
        ]


def post_run(base: str, spec: dict[str, Any]) -> str:
    created = httpx.post(f"{base}/runs", json=spec, timeout=30)
    created.raise_for_status()
    return str(created.json()["id"])


def wait_final(url: str, run_id: str, timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT status FROM runs WHERE id = %s", (run_id,)).fetchone()
            if row and row[0] in {"succeeded", "failed", "cancelled"}:
                return str(row[0])
            time.sleep(0.25)
    raise TimeoutError(f"run {run_id} not final after {timeout}s")


def wait_workers(url: str, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM procrastinate_workers "
                "WHERE last_heartbeat > now() - interval '10 seconds'"
            ).fetchone()
            if row and row[0] >= count:
                return
            time.sleep(0.5)
    raise TimeoutError(f"{count} workers did not heartbeat within {timeout}s")


def forget_workers(url: str) -> None:
    """Stopped supervisors' rows, so the next side's run counts only its own live workers."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM procrastinate_workers")


def run_rows(url: str, run_id: str) -> tuple[list[TrialRow], float]:
    """The run's trial rows and its seconds from the first trial start to the run's end."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT v.trial, v.worker, v.queued_at, v.started_at, v.finished_at, t.duration_s "
            "FROM nas_trial_jobs v JOIN trials t ON t.run_id = v.run_id AND t.number = v.trial "
            "WHERE v.run_id = %s AND v.trial_status = 'completed' ORDER BY v.trial",
            (run_id,),
        ).fetchall()
        span = conn.execute(
            "SELECT extract(epoch FROM r.finished_at - min(t.started_at)) "
            "FROM runs r JOIN trials t ON t.run_id = r.id WHERE r.id = %s GROUP BY r.finished_at",
            (run_id,),
        ).fetchone()
    assert span is not None
    return [TrialRow(*r) for r in rows], float(span[0])


def one_side(
    url: str, base: str, tmp: Path, processes: int, spec: dict[str, Any], label: str
) -> SideRun:
    env = service_env(
        url,
        CEREBROS_ARTIFACTS_DIR=str(tmp / f"artifacts-{label}"),
        CEREBROS_DATA_DIR=str(tmp / f"data-{label}"),
    )
    proc = start(["worker", "--processes", str(processes)], env, tmp / f"worker-{label}.log")
    try:
        wait_workers(url, processes)
        warm = digits_spec(trials=2 * processes, epochs=1, batch_size=32, seed=1000)
        status = wait_final(url, post_run(base, warm))
        if status != "succeeded":
            raise RuntimeError(f"warm-up run ended {status}")
        before = load1()
        run_id = post_run(base, spec)
        status = wait_final(url, run_id)
        after = load1()
        if status != "succeeded":
            raise RuntimeError(f"run {run_id} ended {status}")
        rows, seconds = run_rows(url, run_id)
        return SideRun(processes, seconds, len(rows), before, after, rows)
    finally:
        stop(proc, timeout=120)
        forget_workers(url)


def part_scaling(args: argparse.Namespace) -> str:
    runs: dict[int, list[SideRun]] = {1: [], 2: []}
    speedups = Stat()
    per_repeat = []
    with tempfile.TemporaryDirectory() as tmp_, fresh_database("cerebros_bench_dist") as url:
        tmp = Path(tmp_)
        env = service_env(url, CEREBROS_ARTIFACTS_DIR=str(tmp / "api-artifacts"))
        with api_server(env, tmp) as base:
            for repeat in range(args.repeats):
                spec = digits_spec(
                    trials=args.trials, epochs=args.epochs, batch_size=args.batch_size, seed=repeat
                )
                order = [1, 2] if repeat % 2 == 0 else [2, 1]
                for n in order:
                    side = one_side(url, base, tmp, n, spec, f"{repeat}-{n}")
                    runs[n].append(side)
                    print(
                        f"repeat {repeat + 1} processes={n}: {side.seconds:.1f} s, "
                        f"{side.per_min:.1f} trials/min, workers used {side.workers_used()}, "
                        f"load {side.load_before:.2f} -> {side.load_after:.2f}",
                        flush=True,
                    )
                one, two = runs[1][-1], runs[2][-1]
                speedups.add(two.per_min / one.per_min)
                per_repeat.append(
                    f"{repeat + 1}: 1 process {one.per_min:.1f}/min (load {one.load_before:.2f}"
                    f"->{one.load_after:.2f}), 2 processes {two.per_min:.1f}/min (load "
                    f"{two.load_before:.2f}->{two.load_after:.2f}) = {speedups.values[-1]:.2f}x"
                )
    rows = []
    for n in (1, 2):
        sides = runs[n]
        rows.append(
            [
                n,
                Stat([s.per_min for s in sides]).cell("{:.1f}"),
                Stat([s.seconds for s in sides]).cell("{:.1f}"),
                Stat([float(s.workers_used()) for s in sides]).cell("{:.0f}"),
                Stat([s.load_before for s in sides]).cell(),
                Stat([s.load_after for s in sides]).cell(),
            ]
        )
    table = markdown_table(
        [
            "worker processes",
            "trials/min",
            "first trial start -> run end, s",
            "workers that trained",
            "load avg before",
            "load avg after",
        ],
        rows,
    )
    overhead_rows = []
    for n in (1, 2):
        waits = [w for s in runs[n] for w in s.idle_waits_ms()]
        gaps = [g for s in runs[n] for g in s.gaps_ms()]
        in_job = [g for s in runs[n] for g in s.in_job_ms()]
        overhead_rows.append([n, spread(waits), spread(gaps), spread(in_job)])
    overhead = markdown_table(
        [
            "worker processes",
            "queued -> started (worker idle), ms",
            "finished -> next started, same worker, ms",
            "job work around train_trial, ms",
        ],
        overhead_rows,
    )
    verdict = "met" if speedups.median >= TARGET_SPEEDUP else "missed"
    return (
        f"{machine_line()}\n\n{args.trials} trials x {args.epochs} epochs, batch size "
        f"{args.batch_size}, digits, random strategy, seed = repeat index; {args.repeats} "
        "repeats, sides alternated. Cells: median (min-max).\n\n"
        f"{table}\n\n**2 processes / 1 process: {speedups.cell()}x** (target >= "
        f"{TARGET_SPEEDUP}x: {verdict}). Per repeat: " + "; ".join(per_repeat) + "\n\n"
        f"Queue overhead per trial (all timed runs of each side pooled; median (min-max)):\n\n"
        f"{overhead}\n"
    )


# --- (c): ASHA vs random, serial engine -----------------------------------------------------


class EpochTrace:
    """Every epoch's val_accuracy in training order; can stop the search at a goal."""

    def __init__(self, goal: float | None = None, cap: int | None = None) -> None:
        self.trace: list[float] = []
        self.goal = goal
        self.cap = cap

    def reached_at(self, goal: float) -> int | None:
        return next((i + 1 for i, v in enumerate(self.trace) if v >= goal - 1e-9), None)

    def should_stop(self) -> bool:
        if self.goal is not None and self.reached_at(self.goal) is not None:
            return True
        return self.cap is not None and len(self.trace) >= self.cap

    def trial_started(self, trial: Any) -> None:
        pass

    def epoch_finished(self, trial_number: int, epoch: int, metrics: dict[str, float]) -> None:
        self.trace.append(metrics.get("val_accuracy", float("-inf")))

    def trial_finished(self, trial: Any) -> None:
        pass


def serial_search(spec: dict[str, Any], trace: EpochTrace) -> float:
    from app.nas.engine import run_search
    from app.nas.spec import NasSpec

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run_search(
            NasSpec.model_validate(spec),
            artifacts_dir=Path(tmp),
            reporter=trace,  # type: ignore[arg-type]
            should_stop=trace.should_stop,
        )
        return time.perf_counter() - started


def part_asha(args: argparse.Namespace) -> str:
    from app.nas.datasets import load_dataset

    data = load_dataset("digits", validation_split=0.2, seed=0)
    row = 1 / len(data.y_val)
    rows = []
    ratios, needed, rand_best, rand_epochs, rand_s, asha_s = (Stat() for _ in range(6))
    loads: list[float] = []
    reached = 0
    for seed in range(args.seeds):
        common = {"epochs": args.asha_epochs, "batch_size": 64, "seed": seed}
        rand_spec = digits_spec(trials=args.random_trials, **common)
        asha_spec = digits_spec(trials=500, strategy="asha", **common)
        rand = EpochTrace()
        loads.append(load1())
        # Random's goal is needed to stop ASHA, so random runs first in even seeds; in odd
        # seeds ASHA runs first, to a cap, and its trace is scored afterwards.
        if seed % 2 == 0:
            rand_s.add(serial_search(rand_spec, rand))
            goal = max(rand.trace) - row
            asha = EpochTrace(goal=goal, cap=len(rand.trace))
            asha_s.add(serial_search(asha_spec, asha))
        else:
            asha = EpochTrace(cap=args.random_trials * args.asha_epochs)
            asha_s.add(serial_search(asha_spec, asha))
            rand_s.add(serial_search(rand_spec, rand))
            goal = max(rand.trace) - row
        loads.append(load1())
        rand_best.add(max(rand.trace))
        rand_epochs.add(len(rand.trace))
        at = asha.reached_at(goal)
        if at is not None:
            reached += 1
            needed.add(at)
            ratios.add(at / len(rand.trace))
        rows.append(
            [
                seed,
                f"{max(rand.trace):.4f} @ {len(rand.trace)}",
                f"{goal:.4f}",
                at if at is not None else f"not reached in {len(asha.trace)}",
                f"{at / len(rand.trace):.2f}" if at is not None else "-",
                f"{loads[-2]:.2f} -> {loads[-1]:.2f}",
            ]
        )
        print(f"seed {seed}: {rows[-1]}", flush=True)
    table = markdown_table(
        [
            "seed",
            "random: best @ epochs",
            "goal (best - 1 row)",
            "ASHA epochs to the goal",
            "ratio",
            "load avg",
        ],
        rows,
    )
    # A seed where ASHA did not get there within random's epochs counts as ratio 1 (or more)
    # for the median over all seeds.
    all_ratios = Stat(ratios.values + [1.0] * (args.seeds - reached))
    verdict = "met" if all_ratios.median <= TARGET_ASHA_RATIO + 1e-9 else "missed"
    return (
        f"{machine_line()}\n\nRandom: {args.random_trials} trials x {args.asha_epochs} epochs; "
        f"ASHA: eta 3, min_epochs 1, rungs up to {args.asha_epochs} epochs; digits "
        f"({len(data.y_val)} validation rows, one row = {row:.4f}), batch size 64, serial "
        f"engine.\n\n{table}\n\nASHA reached the goal in {reached}/{args.seeds} seeds; "
        f"epochs needed {needed.cell('{:.0f}')}; **ratio ASHA/random epochs, median over all "
        f"seeds (not reached = 1): {all_ratios.cell()}** (target <= 1/3: {verdict}); random "
        f"best {rand_best.cell('{:.4f}')}; wall s random {rand_s.cell('{:.0f}')}, ASHA (stopped "
        f"at the goal) {asha_s.cell('{:.0f}')}.\n"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--part", choices=["scaling", "asha"], required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--random-trials", type=int, default=30)
    parser.add_argument("--asha-epochs", type=int, default=9)
    args = parser.parse_args(argv)
    body = part_scaling(args) if args.part == "scaling" else part_asha(args)
    print("\n" + body)


if __name__ == "__main__":
    main()
