"""Bookkeeping cost per trial and per epoch, and how it grows with the trials table.

Drives the real `DatabaseReporter` (app.pipeline.progress) from a thread, as the search does:
trial_started (trial upsert + event), epoch_finished (history append + event) per epoch,
trial_finished (final upsert + event), each in its own transaction. Counts the SQL statements,
transactions and pool checkouts per call, and times the reads the API does for one run
(GET /runs/{id}/trials: run + trials; progress aggregate; events page) with 1k, 10k and 100k
background trial rows (bulk-loaded with generate_series, with their events).

    python -m benchmarks.bookkeeping --scales 1000 10000 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db.session import create_engine, create_session_factory
from app.events.store import list_events
from app.nas.records import TrialRecord, TrialStart
from app.pipeline.progress import DatabaseReporter
from app.runs import repository
from app.runs import trials as trial_rows
from benchmarks._db import append_section, fmt, fresh_database, md_table, nproc

TARGET_MS_PER_TRIAL = 5.0
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
    """Add trials number `have`..`want`-1 (10 per run), each with epochs + 2 events."""
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
        "events": epochs + 2,
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


def drive_trials(
    reporter: DatabaseReporter, counts: Counts, trials: int, epochs: int, result: RoundResult
) -> None:
    """The search thread's calls: start, epochs, finish per trial; timed and counted."""

    def timed(kind: str, call: Any, *args: Any) -> None:
        before = counts.snapshot()
        start = time.perf_counter()
        call(*args)
        reporter.flush()  # measure the write itself, not just queueing it
        result.ms.setdefault(kind, []).append((time.perf_counter() - start) * 1000)
        after = counts.snapshot()
        result.per_call[kind] = (
            after[0] - before[0],
            after[1] - before[1],
            after[2] - before[2],
        )

    for number in range(1, trials + 1):
        begin = time.perf_counter()
        timed(
            "trial_started", reporter.trial_started, TrialStart(number, ARCHITECTURE, HYPER, 5000)
        )
        history = []
        for epoch in range(1, epochs + 1):
            history.append({"epoch": epoch, **metrics(epoch)})
            timed("epoch_finished", reporter.epoch_finished, number, epoch, metrics(epoch))
        record = TrialRecord(
            number=number,
            status="completed",
            architecture=ARCHITECTURE,
            hyperparameters=HYPER,
            params_count=5000,
            score=0.9,
            best_epoch=epochs,
            epochs_run=epochs,
            history=history,
            duration_s=1.0,
        )
        timed("trial_finished", reporter.trial_finished, record)
        result.ms.setdefault("whole trial", []).append((time.perf_counter() - begin) * 1000)
    if reporter.error is not None:
        raise reporter.error


async def new_run(sessions: async_sessionmaker[AsyncSession]) -> uuid.UUID:
    from app.db.models import Run

    run_id = uuid.uuid4()
    async with sessions.begin() as session:
        session.add(
            Run(id=run_id, owner="bench", status="running", spec={"budget": {"max_trials": 50}})
        )
    return run_id


async def time_reads(
    sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID, repeats: int, result: RoundResult
) -> None:
    """The API's reads for one run, each in its own session as a request would."""

    async def trials_page() -> None:
        async with sessions() as session:
            await repository.get_run(session, run_id)
            await trial_rows.list_trials(session, run_id)

    async def progress() -> None:
        async with sessions() as session:
            await repository.get_run(session, run_id)
            await trial_rows.trial_progress(session, run_id)

    async def events() -> None:
        async with sessions() as session:
            await list_events(session, run_id, after=0, limit=500)

    for name, read in (
        ("read trials", trials_page),
        ("read progress", progress),
        ("read events", events),
    ):
        for _ in range(repeats):
            start = time.perf_counter()
            await read()
            result.ms.setdefault(name, []).append((time.perf_counter() - start) * 1000)


async def one_round(
    sessions: async_sessionmaker[AsyncSession],
    counts: Counts,
    args: argparse.Namespace,
    *,
    durable_epochs: bool = False,
) -> RoundResult:
    result = RoundResult()
    run_id = await new_run(sessions)
    reporter = DatabaseReporter(
        sessions, run_id, asyncio.get_running_loop(), durable_epochs=durable_epochs
    )
    async with reporter:
        await asyncio.to_thread(drive_trials, reporter, counts, args.trials, args.epochs, result)
    await time_reads(sessions, run_id, args.read_repeats, result)
    return result


KINDS = (
    "trial_started",
    "epoch_finished",
    "trial_finished",
    "whole trial",
    "read trials",
    "read progress",
    "read events",
)


async def measure(url: str, args: argparse.Namespace) -> dict[int, list[RoundResult]]:
    engine = create_engine(url, pool_size=4)  # the worker's pool
    counts = Counts()
    counts.attach(engine)
    sessions = create_session_factory(engine)
    results: dict[int, list[RoundResult]] = {}
    have = 0
    try:
        async with sessions() as session:  # warm the pool and the statement caches
            await repository.get_run(session, uuid.uuid4())
        for scale in args.scales:
            took = await asyncio.to_thread(load_background, url, have, scale, args.bg_epochs)
            have = max(have, scale)
            print(
                f"background: {scale} trial rows ({scale * (args.bg_epochs + 2)} events) "
                f"loaded in {took:.1f}s"
            )
            results[scale] = []
            for r in range(args.rounds):
                if args.durable_epochs_too:
                    # Before the async-epoch-commit change, alternated with it in each round.
                    durable = await one_round(sessions, counts, args, durable_epochs=True)
                    results.setdefault(-scale, []).append(durable)
                    print(
                        f"  round {r + 1} durable epochs: epoch_finished "
                        f"{statistics.median(durable.ms['epoch_finished']):.2f} ms, whole trial "
                        f"{statistics.median(durable.ms['whole trial']):.2f} ms (medians)"
                    )
                res = await one_round(sessions, counts, args)
                results[scale].append(res)
                print(
                    f"  round {r + 1}: "
                    + ", ".join(f"{k} {statistics.median(res.ms[k]):.2f}" for k in KINDS)
                    + " ms (medians)"
                )
    finally:
        await engine.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20, help="measured trials per round")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per measured trial")
    parser.add_argument("--bg-epochs", type=int, default=5, help="epochs per background trial")
    parser.add_argument("--read-repeats", type=int, default=50)
    parser.add_argument(
        "--durable-epochs-too",
        action="store_true",
        help="also run rounds with durable (synchronous) epoch commits, alternated",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not append to docs/benchmarks.md")
    args = parser.parse_args()
    command = "python -m benchmarks.bookkeeping " + shlex.join(sys.argv[1:])
    print(f"nproc={nproc()} {command}")

    with fresh_database("cerebros_bench_bk") as url:
        results = asyncio.run(measure(url, args))

    per_call = results[args.scales[0]][0].per_call
    print("\nper call (statements, commits, pool checkouts):")
    for kind in ("trial_started", "epoch_finished", "trial_finished"):
        print(f"  {kind}: {per_call[kind]}")

    rows = []
    for key, rounds in sorted(results.items(), key=lambda kv: (abs(kv[0]), kv[0] > 0)):
        scale = abs(key)
        med = {k: [statistics.median(r.ms[k]) for r in rounds] for k in KINDS}
        fixed = [a + b for a, b in zip(med["trial_started"], med["trial_finished"], strict=True)]
        label = f"{scale:,}" + (" (durable epoch commits)" if key < 0 else "")
        rows.append(
            [
                label,
                *(fmt(med[k]) for k in KINDS[:3]),
                fmt(fixed),
                fmt(med["whole trial"]),
                *(fmt(med[k]) for k in KINDS[4:]),
            ]
        )
        ratio = statistics.median(fixed) / TARGET_MS_PER_TRIAL
        print(
            f"{label:>7} rows: start+finish {fmt(fixed)} ms = {ratio:.2f}x the "
            f"{TARGET_MS_PER_TRIAL} ms target; epoch {fmt(med['epoch_finished'])} ms; "
            f"whole trial ({args.epochs} epochs) "
            f"{fmt(med['whole trial'])} ms"
        )
    table = md_table(
        [
            "background trial rows",
            "trial_started",
            "epoch_finished",
            "trial_finished",
            "start + finish",
            f"whole trial ({args.epochs} epochs)",
            "GET trials reads",
            "progress reads",
            "events page",
        ],
        rows,
    )
    print("\n" + table)
    if not args.no_doc:
        stmts = "; ".join(
            f"`{k}` {per_call[k][0]} statements, {per_call[k][1]} commit, "
            f"{per_call[k][2]} pool checkout"
            for k in ("trial_started", "epoch_finished", "trial_finished")
        )
        body = (
            "Each cell: median over rounds of the per-round median, in ms, (min-max over "
            f"{args.rounds} rounds); {args.trials} trials x {args.epochs} epochs per round, "
            f"reads repeated {args.read_repeats} times per round.\n\n"
            + table
            + f"\n\nPer call: {stmts}.\n"
        )
        append_section(
            "Bookkeeping per trial and per epoch (`benchmarks/bookkeeping.py`)", command, body
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
