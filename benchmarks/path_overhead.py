"""Whole service path vs a bare Python loop training the same architectures.

Whole path: ``POST /runs`` to a real API process (auth off) -> Postgres queue -> a real
worker process -> saga -> `run_search` -> trial rows and events per epoch; timed from the POST
to the client seeing the run final (polling every 0.1 s). Bare loop: in this process, the
same seeded sequence of unique architectures (`app.nas.space.architectures`, de-duplicated by
fingerprint like the engine), `build_model`, compile, ``model.fit`` on the same split and
``clear_session()`` between models. The worker is warmed with a one-trial run first (its
first run imports keras/torch, ~10 s, once per process), and so is this process.

Needs a Postgres server: ``TEST_DATABASE_URL`` (admin), else local 5432, else embedded; a
fresh database is created and migrated, and dropped at the end. Usage::

    python -m benchmarks.path_overhead --repeats 3 --trials 20 --epochs 2
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from app.nas.backend import keras
from app.nas.builder import build_model
from app.nas.datasets import load_dataset
from app.nas.space import architectures, head_for
from app.nas.spec import NasSpec
from app.nas.trainer import compile_candidate
from benchmarks._common import Stat, append_section, digits_spec, markdown_table, stopwatch
from benchmarks._db import fresh_database
from tests.support.processes import api_server, service_env, worker_process


def bare_loop(spec: NasSpec) -> int:
    """Train the spec's candidates with nothing around them; returns how many were trained."""
    params = spec.parameters
    data = load_dataset(spec.dataset_id, validation_split=params.validation_split, seed=params.seed)
    head = head_for(data.task, data.n_classes, spec.search_space.final_activation)
    seen: set[str] = set()
    sequence = architectures(spec.search_space, params.seed, input_dim=data.input_dim, head=head)
    while len(seen) < spec.budget.max_trials:
        arch = next(sequence)
        if arch.fingerprint() in seen:
            continue
        seen.add(arch.fingerprint())
        model = build_model(arch, seed=params.seed + len(seen))
        compile_candidate(model, learning_rate=arch.learning_rate, loss=arch.loss, task=data.task)
        model.fit(
            data.x_train,
            data.y_train,
            validation_data=(data.x_val, data.y_val),
            batch_size=params.batch_size,
            epochs=params.epochs,
            verbose=0,
            shuffle=True,
        )
        del model
        keras.backend.clear_session(free_memory=False)
    return len(seen)


def whole_path(base: str, spec: dict[str, Any], timeout: float = 900) -> tuple[float, str]:
    """POST the run and wait until it is final; returns (seconds, run id)."""
    with stopwatch() as t:
        created = httpx.post(f"{base}/runs", json=spec, timeout=30)
        created.raise_for_status()
        run_id = created.json()["id"]
        deadline = time.monotonic() + timeout
        while True:
            run = httpx.get(f"{base}/runs/{run_id}", timeout=30).json()
            if run.get("status") in {"succeeded", "failed", "cancelled"}:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} not final after {timeout}s")
            time.sleep(0.1)
    if run["status"] != "succeeded":
        raise RuntimeError(f"run {run_id} ended {run['status']}: {run.get('error')}")
    return t[0], run_id


def stored_counts(database_url: str, run_id: str) -> tuple[int, int]:
    """(completed trial rows, events) the run left in the database."""
    with psycopg.connect(database_url) as conn:
        trials = conn.execute(
            "SELECT count(*) FROM trials WHERE run_id = %s AND status = 'completed'", (run_id,)
        ).fetchone()
        events = conn.execute("SELECT count(*) FROM run_events WHERE run_id = %s", (run_id,))
        n_events = events.fetchone()
    return int(trials[0] if trials else 0), int(n_events[0] if n_events else 0)


def trial_gaps(database_url: str, run_id: str) -> str:
    """Where a whole-path run's time outside training went, from its own rows (ms medians)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT started_at, finished_at, duration_s FROM trials WHERE run_id = %s "
            "ORDER BY number",
            (run_id,),
        ).fetchall()
        run = conn.execute(
            "SELECT created_at, finished_at FROM runs WHERE id = %s", (run_id,)
        ).fetchone()
    assert rows and run is not None
    gaps = [(b[0] - a[1]).total_seconds() * 1000 for a, b in itertools.pairwise(rows)]
    work = [((r[1] - r[0]).total_seconds() - r[2]) * 1000 for r in rows]
    return (
        f"end -> next claim {statistics.median(gaps) if gaps else 0:.0f} ms, job work "
        f"{statistics.median(work):.0f} ms, POST -> first claim "
        f"{(rows[0][0] - run[0]).total_seconds() * 1000:.0f} ms, last end -> final "
        f"{(run[1] - rows[-1][1]).total_seconds() * 1000:.0f} ms, sum of train_trial "
        f"{sum(r[2] for r in rows):.2f} s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)

    def spec_for(seed: int, trials: int) -> dict[str, Any]:
        return digits_spec(trials=trials, epochs=args.epochs, batch_size=args.batch_size, seed=seed)

    path_s, bare_s, extra = Stat(), Stat(), Stat()
    counts: list[tuple[int, int]] = []
    # The 1-minute load average before and after each side's figure: the cores are shared.
    loads: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, fresh_database("cerebros_bench_path") as url:
        env = service_env(url, CEREBROS_ARTIFACTS_DIR=str(Path(tmp) / "artifacts"))
        with api_server(env, Path(tmp)) as base, worker_process(env, Path(tmp)):
            whole_path(base, spec_for(1000, 1))  # warm the worker (imports, dataset)
            bare_loop(NasSpec.model_validate(spec_for(1000, 1)))  # and this process
            # The worker freezes its import-time heap after its first trial
            # (app.nas.backend.clear_backend_caches); do the same here, or the bare loop pays
            # for full collections of ~380 000 keras/torch objects the worker never rescans.
            gc.collect()
            gc.freeze()
            for repeat in range(args.repeats):
                spec = spec_for(repeat, args.trials)
                sides = ["path", "bare"] if repeat % 2 == 0 else ["bare", "path"]
                for side in sides:
                    before = os.getloadavg()[0]
                    if side == "path":
                        seconds, run_id = whole_path(base, spec)
                        path_s.add(seconds)
                        counts.append(stored_counts(url, run_id))
                        print(f"  path: {trial_gaps(url, run_id)}", flush=True)
                    else:
                        with stopwatch() as t:
                            bare_loop(NasSpec.model_validate(spec))
                        bare_s.add(t[0])
                    loads.append(f"{side} {before:.2f}->{os.getloadavg()[0]:.2f}")
                extra.add(100 * (path_s.values[-1] / bare_s.values[-1] - 1))
                print(
                    f"repeat {repeat + 1}: path {path_s.values[-1]:.1f} s, bare "
                    f"{bare_s.values[-1]:.1f} s, extra {extra.values[-1]:+.1f} %, "
                    f"stored (trials, events) {counts[-1]}, load {', '.join(loads[-2:])}",
                    flush=True,
                )
    table = markdown_table(
        ["side", "wall s", "extra wall vs bare loop"],
        [
            ["whole path (POST -> final)", path_s.cell("{:.1f}"), extra.cell("{:+.1f} %")],
            ["bare loop", bare_s.cell("{:.1f}"), "-"],
        ],
    )
    body = (
        f"{args.trials} trials x {args.epochs} epochs, batch size {args.batch_size}, digits; "
        f"{args.repeats} repeats (seed = repeat index, same architectures on both sides), sides "
        "alternating order per repeat; API, worker, Postgres and this process share the cores. "
        f"Each whole-path run stored (completed trial rows, events): {counts}. "
        f"Load average (1 min) before->after each side, in run order: {'; '.join(loads)}. "
        "Cells: median (min-max).\n\n"
        f"{table}"
    )
    append_section(
        "Whole path vs bare loop (`benchmarks/path_overhead.py`)", body, write=not args.no_doc
    )


if __name__ == "__main__":
    main()
