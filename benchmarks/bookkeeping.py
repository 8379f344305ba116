"""Bookkeeping cost per trial, and how it grows with the trials table.

Times the per-trial writes of a `cerebros.run_trial` job (app/pipeline/trial_job.py) with no
training: the claim (`_claim`: run and trial rows read, the trial locked, marked running on
this worker, ``trial.started`` sent live; its commit does not wait for the WAL flush) and
the end (`_end`: the
run row locked, the final record with the whole 10-epoch history, ``trial.completed``
published, the run's next trials planned in the same transaction (the advance job is
deferred only when nothing is left to queue); the trial's one durable commit), called with a real
`Runtime` (the worker's engine, pool of 4, and the queue app) on a real, freshly migrated
database. A bare durable one-row ``INSERT`` + commit on a plain psycopg connection, timed
before each trial, gives the disk's floor. The read between claim and end (`_may_keep`: may
the selection rule choose this trial; one read-only session) is timed too. Every trial is
queued up front, so the end's planning finds nothing to add; any advance job an end deferred
is removed, untimed, as the run's worker would have run it. Epochs are live notifications
only (no transaction) and are not part of this.
Background rows: N trials (10 per run) with their events, bulk-loaded with
``generate_series``, then ``VACUUM ANALYZE``.

    python -m benchmarks.bookkeeping --scales 1000 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import get_settings
from app.db.models import Run
from app.db.urls import libpq_url
from app.events.publish import RunEvents
from app.nas.datasets import load_dataset
from app.nas.records import TrialRecord
from app.nas.space import architectures, head_for
from app.nas.spec import NasSpec
from app.nas.strategies.base import NewTrial
from app.nas.trial import TrialRequest
from app.pipeline import trial_job
from app.queue.app import create_queue_app
from app.runs import trials as trial_rows
from app.runtime import Runtime, create_runtime
from benchmarks._common import digits_spec
from benchmarks._db import append_section, fmt, fresh_database, md_table, nproc

TARGET_MS_PER_TRIAL = 5.0
EPOCHS = 10
ARCHITECTURE: dict[str, Any] = {
    "levels": [
        {"units": [{"neurons": 32 * (i + 1), "activation": "relu"} for i in range(3)]}
        for _ in range(4)
    ],
    "connections": [[i, j] for i in range(8) for j in range(i + 1, 8, 3)],
}
HYPER = {"learning_rate": 0.001, "activation": "relu", "batch_size": 32}


def metrics(epoch: int) -> dict[str, float]:
    return {
        "loss": 1.0 / epoch,
        "accuracy": 0.5 + epoch / 100,
        "val_loss": 1.1 / epoch,
        "val_accuracy": 0.45 + epoch / 100,
    }


# --- background rows ------------------------------------------------------------------------

BULK_RUNS = """
INSERT INTO runs (id, owner, status, spec, created_at, updated_at)
SELECT md5('bg' || r)::uuid, 'bg', 'succeeded', %(spec)s::jsonb, now(), now()
FROM generate_series(%(first_run)s::int, %(last_run)s::int) AS r
ON CONFLICT DO NOTHING
"""
BULK_TRIALS = """
INSERT INTO trials (run_id, number, status, architecture, hyperparameters, params_count, score,
                    best_epoch, epochs_run, history, duration_s, record, started_at, finished_at)
SELECT md5('bg' || (t / 10))::uuid, t %% 10 + 1, 'completed', %(arch)s::jsonb, %(hyper)s::jsonb,
       1000 + t, random(), %(epochs)s, %(epochs)s, %(history)s::jsonb, 1.5, %(record)s::jsonb,
       now(), now()
FROM generate_series(%(first)s::int, %(last)s::int) AS t
"""
BULK_EVENTS = """
INSERT INTO run_events (run_id, name, payload, correlation_id, dedup_key, created_at)
SELECT md5('bg' || (t / 10))::uuid, 'cerebros.nas.trial.epoch',
       jsonb_build_object('trial', t %% 10 + 1, 'epoch', e, 'metrics', %(metrics)s::jsonb),
       md5('bg' || (t / 10)), 'trial:' || (t %% 10 + 1) || ':epoch:' || e, now()
FROM generate_series(%(first)s::int, %(last)s::int) AS t,
     generate_series(0, %(events)s::int - 1) AS e
"""


def load_background(url: str, have: int, want: int, epochs: int) -> float:
    """Add trials number `have`..`want`-1 (10 per run), each with 2 events."""
    if want <= have:
        return 0.0
    import json

    history = [{"epoch": e, **metrics(e)} for e in range(1, epochs + 1)]
    record = {"status": "completed", "history": history, "hyperparameters": HYPER}
    params = {
        "spec": json.dumps({"budget": {"max_trials": 10}, "objective": "val_accuracy"}),
        "first_run": have // 10,
        "last_run": (want - 1) // 10,
        "first": have,
        "last": want - 1,
        "arch": json.dumps(ARCHITECTURE),
        "hyper": json.dumps(HYPER),
        "epochs": epochs,
        "history": json.dumps(history),
        "record": json.dumps(record),
        "metrics": json.dumps(metrics(1)),
        "events": 2,  # trial.started and the terminal event: epochs are not events
    }
    began = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        # Bulk rows are not news: no NOTIFY per background event.
        conn.execute("ALTER TABLE run_events DISABLE TRIGGER run_events_notify")
        with conn.transaction():
            conn.execute(BULK_RUNS, params)
            conn.execute(BULK_TRIALS, params)
            conn.execute(BULK_EVENTS, params)
        conn.execute("ALTER TABLE run_events ENABLE TRIGGER run_events_notify")
        conn.execute("VACUUM ANALYZE runs, trials, run_events")
    return time.perf_counter() - began


# --- counting -------------------------------------------------------------------------------


@dataclass
class Counts:
    statements: int = 0
    commits: int = 0
    checkouts: int = 0

    def attach(self, engine: AsyncEngine) -> None:
        sync = engine.sync_engine

        @event.listens_for(sync, "before_cursor_execute")
        def _statement(*_: object) -> None:
            self.statements += 1

        @event.listens_for(sync, "commit")
        def _commit(*_: object) -> None:
            self.commits += 1

        @event.listens_for(sync.pool, "checkout")
        def _checkout(*_: object) -> None:
            self.checkouts += 1

    def snapshot(self) -> tuple[int, int, int]:
        return self.statements, self.commits, self.checkouts


@dataclass
class RoundResult:
    ms: dict[str, list[float]] = field(default_factory=dict)
    per_call: dict[str, tuple[int, int, int]] = field(default_factory=dict)


KINDS = ("claim", "best read", "end", "claim + end", "whole trial", "bare commit")


def spec_doc() -> dict[str, Any]:
    return digits_spec(trials=500, epochs=EPOCHS, batch_size=32)


async def new_run(runtime: Runtime, spec: NasSpec, trials: int) -> tuple[uuid.UUID, list[int]]:
    """A running run with ``trials`` queued trials (real requests); returns its id."""
    run_id = uuid.uuid4()
    head = head_for("classification", 10, spec.search_space.final_activation)
    seq = architectures(spec.search_space, 0, input_dim=64, head=head)
    async with runtime.sessions.begin() as session:
        session.add(
            Run(id=run_id, owner="bench", status="running", spec=spec.model_dump(mode="json"))
        )
        await session.flush()
        for number in range(1, trials + 1):
            request = TrialRequest.of(number, NewTrial(next(seq), epochs=EPOCHS))
            arch = request.architecture
            await trial_rows.queue_trial(
                session,
                run_id,
                number,
                request.to_dict(),
                hyperparameters=arch.hyperparameters(),
                params_count=arch.params_count(),
            )
    return run_id, list(range(1, trials + 1))


def record_of(number: int, request: dict[str, Any]) -> TrialRecord:
    history = [{"epoch": float(e), **metrics(e)} for e in range(1, EPOCHS + 1)]
    return TrialRecord(
        number=number,
        status="completed",
        architecture=request["architecture"],
        hyperparameters=HYPER,
        params_count=5000,
        score=history[-1]["val_accuracy"],
        best_epoch=EPOCHS,
        epochs_run=EPOCHS,
        history=history,
        duration_s=1.0,
        epochs_target=EPOCHS,
    )


def drop_waiting_advances(url: str) -> None:
    """What the run's worker would have done: run (here: remove) the deferred advance."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM procrastinate_jobs WHERE task_name = 'cerebros.run_nas' "
            "AND status = 'todo'"
        )


async def one_round(runtime: Runtime, counts: Counts, args: argparse.Namespace) -> RoundResult:
    result = RoundResult()
    spec = NasSpec.model_validate(spec_doc())
    run_id, numbers = await new_run(runtime, spec, args.trials)
    data = await asyncio.to_thread(load_dataset, "digits")
    events = RunEvents(runtime.sessions, run_id)
    async with runtime.sessions() as session:
        requests = {
            t.number: t.request or {} for t in await trial_rows.list_trials(session, run_id)
        }

    async def timed(kind: str, coro: Any) -> Any:
        before = counts.snapshot()
        start = time.perf_counter()
        out = await coro
        result.ms.setdefault(kind, []).append((time.perf_counter() - start) * 1000)
        after = counts.snapshot()
        result.per_call[kind] = tuple(a - b for a, b in zip(after, before, strict=True))  # type: ignore[assignment]
        return out

    bare = await psycopg.AsyncConnection.connect(libpq_url(runtime.database_url))
    await bare.execute("CREATE TABLE IF NOT EXISTS bench_bare (id bigserial, v int)")
    await bare.commit()
    for number in numbers:
        # The floor: one durable one-row INSERT + commit on a plain psycopg connection.
        start = time.perf_counter()
        await bare.execute("INSERT INTO bench_bare (v) VALUES (%s)", (number,))
        await bare.commit()
        result.ms.setdefault("bare commit", []).append((time.perf_counter() - start) * 1000)
        record = record_of(number, requests[number])
        begin = time.perf_counter()
        claim = await timed(
            "claim", trial_job._claim(runtime, run_id, number, events, via_queue=True)
        )
        assert claim is not None, "trial not claimed"
        await timed("best read", trial_job._may_keep(runtime, run_id, spec, record))
        await timed(
            "end",
            trial_job._end(
                runtime,
                run_id,
                record,
                events,
                spec=spec,
                data=data,
                best_model=None,
                checkpoint=None,
                via_queue=True,
            ),
        )
        result.ms.setdefault("whole trial", []).append((time.perf_counter() - begin) * 1000)
        result.ms.setdefault("claim + end", []).append(
            result.ms["claim"][-1] + result.ms["end"][-1]
        )
        await asyncio.to_thread(drop_waiting_advances, runtime.database_url)
    await bare.close()
    async with runtime.sessions() as session:
        done = [t for t in await trial_rows.list_trials(session, run_id) if t.status == "completed"]
    assert len(done) == len(numbers), f"{len(done)} of {len(numbers)} trials completed"
    return result


async def measure(
    url: str, args: argparse.Namespace
) -> tuple[dict[int, list[RoundResult]], dict[int, list[float]]]:
    settings = get_settings()
    runtime = create_runtime(settings, url, create_queue_app(url, settings), pool_size=4)
    counts = Counts()
    counts.attach(runtime.engine)
    results: dict[int, list[RoundResult]] = {}
    loads: dict[int, list[float]] = {}
    have = 0
    try:
        await one_round(runtime, counts, argparse.Namespace(trials=3))  # warm pool and caches
        for scale in args.scales:
            took = await asyncio.to_thread(load_background, url, have, scale, args.bg_epochs)
            have = max(have, scale)
            print(f"background: {scale} trial rows loaded in {took:.1f}s", flush=True)
            results[scale] = []
            for r in range(args.rounds):
                loads.setdefault(scale, []).append(os.getloadavg()[0])
                res = await one_round(runtime, counts, args)
                loads[scale].append(os.getloadavg()[0])
                results[scale].append(res)
                print(
                    f"  round {r + 1} (load {loads[scale][-2]:.2f} -> {loads[scale][-1]:.2f}): "
                    + ", ".join(f"{k} {statistics.median(res.ms[k]):.2f}" for k in KINDS)
                    + " ms (medians)",
                    flush=True,
                )
    finally:
        await runtime.close()
    return results, loads


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=30, help="measured trials per round")
    parser.add_argument("--bg-epochs", type=int, default=10, help="epochs per background trial")
    parser.add_argument("--doc", action="store_true", help="append a section to docs/benchmarks.md")
    args = parser.parse_args()
    command = "python -m benchmarks.bookkeeping " + shlex.join(sys.argv[1:])
    print(f"nproc={nproc()} {command}")

    with fresh_database("cerebros_bench_bk") as url:
        results, loads = asyncio.run(measure(url, args))

    per_call = results[args.scales[0]][0].per_call
    rows = []
    for scale, rounds in results.items():
        med = {k: [statistics.median(r.ms[k]) for r in rounds] for k in KINDS}
        lo, hi = min(loads[scale]), max(loads[scale])
        rows.append([f"{scale:,}", *(fmt(med[k]) for k in KINDS), f"{lo:.2f}-{hi:.2f}"])
        print(
            f"{scale:>7} rows: claim + end {fmt(med['claim + end'])} ms = "
            f"{statistics.median(med['claim + end']) / TARGET_MS_PER_TRIAL:.2f}x the "
            f"{TARGET_MS_PER_TRIAL} ms target"
        )
    table = md_table(
        [
            "background trial rows",
            "claim",
            "best read",
            "end (10-epoch history)",
            "claim + end",
            "whole (claim + read + end)",
            "bare INSERT + commit (floor)",
            "load avg (1 min)",
        ],
        rows,
    )
    stmts = "; ".join(
        f"`{k}` {per_call[k][0]} statements, {per_call[k][1]} commit, "
        f"{per_call[k][2]} pool checkout"
        for k in ("claim", "best read", "end")
    )
    body = (
        "Each cell: median over rounds of the per-round median, in ms (min-max over "
        f"{args.rounds} rounds); {args.trials} trials x {EPOCHS} epochs per round.\n\n"
        + table
        + f"\n\nPer call: {stmts}.\n"
    )
    print("\n" + body)
    if args.doc:
        append_section("Bookkeeping per trial (`benchmarks/bookkeeping.py`)", command, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
