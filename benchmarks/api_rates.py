"""POST /runs and GET /runs/{id} rates of one real API process vs the same SQL done raw.

Starts one `cerebros serve` (auth off: every caller is owner `local`; queued-run limit raised)
on a fresh migrated database, and compares, at the same concurrency, in alternating rounds:

- `POST /runs` (no Idempotency-Key) against the raw transaction the submit path runs, done
  directly with a psycopg pool: per-owner advisory lock, active-run count, run insert,
  procrastinate job insert (`procrastinate_defer_jobs_v1`), job_id update, commit;
- `GET /runs/{id}` against its raw queries (the run, the trial-progress aggregate).

    python -m benchmarks.api_rates --requests 1000 --concurrency 20 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.db.urls import libpq_url
from app.queue.app import RUN_NAS_TASK
from app.runs.submit import request_hash
from app.schemas.runs import RunCreate
from benchmarks._db import append_section, fmt, fresh_database, md_table, nproc, percentile
from tests.security.conftest import run_spec
from tests.support.processes import api_server, service_env

TARGET_RATIO = 0.40
OWNER = "local"  # the owner of every request when auth is off

RAW_SUBMIT = [
    "SELECT pg_advisory_xact_lock(hashtextextended('cerebros.runs.owner:' || %(owner)s, 0))",
    "SELECT count(*) FROM runs WHERE owner = %(owner)s AND status IN ('queued', 'running')",
    "INSERT INTO runs (id, owner, status, spec, idempotency_key, request_hash) "
    "VALUES (%(id)s, %(owner)s, 'queued', %(spec)s, NULL, %(hash)s) "
    "RETURNING created_at, updated_at",
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW('ml', %(task)s, 0, NULL, NULL, "
    "%(args)s, NULL)]::procrastinate_job_to_defer_v1[])) AS id",
]
RAW_SET_JOB = (
    "UPDATE runs SET job_id = %(job)s, updated_at = clock_timestamp() WHERE id = %(id)s "
    "RETURNING updated_at"
)
RAW_GET = [
    "SELECT * FROM runs WHERE id = %(id)s",
    "SELECT count(*) FILTER (WHERE status IN ('completed', 'pruned', 'failed')), max(score), "
    "min(score) FROM trials WHERE run_id = %(id)s",
]

Request = Callable[[], Awaitable[None]]


async def drive(n: int, concurrency: int, request: Request) -> tuple[list[float], float]:
    """`n` calls of `request`, `concurrency` in flight; (latencies in s, wall time in s)."""
    latencies: list[float] = []
    remaining = iter(range(n))

    async def worker() -> None:
        for _ in remaining:
            start = time.perf_counter()
            await request()
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - began


class Sides:
    """The four measured request kinds, sharing one HTTP client and one psycopg pool."""

    def __init__(self, client: httpx.AsyncClient, pool: AsyncConnectionPool) -> None:
        self.client = client
        self.pool = pool
        self.body = run_spec()
        validated = RunCreate.model_validate(self.body)
        self.spec = validated.model_dump(mode="json", exclude={"run_id"})
        self.hash = request_hash({**self.spec, "run_id": None})
        self.run_ids: list[str] = []

    async def api_post(self) -> None:
        response = await self.client.post("/runs", json=self.body)
        if response.status_code != 202:
            raise RuntimeError(f"POST /runs: {response.status_code} {response.text[:200]}")
        self.run_ids.append(response.json()["id"])

    async def raw_post(self) -> None:
        run_id = uuid.uuid4()
        params = {
            "owner": OWNER,
            "id": run_id,
            "spec": Jsonb(self.spec),
            "hash": self.hash,
            "task": RUN_NAS_TASK,
            "args": Jsonb({"run_id": str(run_id)}),
        }
        async with self.pool.connection() as conn, conn.transaction():
            job = None
            for sql in RAW_SUBMIT:
                row = await (await conn.execute(sql, params)).fetchone()
                job = row[0] if row else None
            await conn.execute(RAW_SET_JOB, {"job": job, "id": run_id})
        self.run_ids.append(str(run_id))

    async def api_get(self) -> None:
        response = await self.client.get(f"/runs/{random.choice(self.run_ids)}")
        if response.status_code != 200:
            raise RuntimeError(f"GET /runs/id: {response.status_code}")
        response.json()

    async def raw_get(self) -> None:
        params = {"id": uuid.UUID(random.choice(self.run_ids))}
        async with self.pool.connection() as conn:
            for sql in RAW_GET:
                await (await conn.execute(sql, params)).fetchall()


def summarize(latencies: list[float], elapsed: float) -> tuple[float, float, float]:
    ms = [t * 1000 for t in latencies]
    return len(ms) / elapsed, statistics.median(ms), percentile(ms, 99)


async def measure(
    base: str, url: str, args: argparse.Namespace
) -> dict[str, list[tuple[float, float, float]]]:
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    pool_size = min(args.concurrency, args.pool)
    results: dict[str, list[tuple[float, float, float]]] = {}
    async with (
        httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client,
        AsyncConnectionPool(
            libpq_url(url), min_size=pool_size, max_size=pool_size, open=False
        ) as pool,
    ):
        await pool.open(wait=True)
        sides = Sides(client, pool)
        await drive(50, args.concurrency, sides.api_post)  # warm-up: connections, caches
        await drive(50, args.concurrency, sides.raw_post)
        order = [("POST api", sides.api_post), ("POST raw", sides.raw_post)]
        get_order = [("GET api", sides.api_get), ("GET raw", sides.raw_get)]
        for r in range(args.rounds):
            # Alternate which side goes first, so drift (other load, table growth) is shared.
            for pairs in (order, get_order):
                for label, request in pairs if r % 2 == 0 else list(reversed(pairs)):
                    figures = summarize(*await drive(args.requests, args.concurrency, request))
                    results.setdefault(label, []).append(figures)
                    print(
                        f"  round {r + 1} {label}: {figures[0]:.0f} req/s, "
                        f"p50 {figures[1]:.1f} ms, "
                        f"p99 {figures[2]:.1f} ms"
                    )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per side per round")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pool",
        type=int,
        default=20,
        help="raw side's connection pool cap (the API's engine: pool_size 10 + overflow 10)",
    )
    parser.add_argument("--note", default="", help="a line added to the docs section")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    command = "python -m benchmarks.api_rates " + shlex.join(sys.argv[1:])
    print(f"nproc={nproc()} {command}")

    with fresh_database("cerebros_bench_api") as url, tempfile.TemporaryDirectory() as logs:
        env = service_env(url, CEREBROS_AUTH="false", CEREBROS_MAX_QUEUED_RUNS_PER_OWNER="10000000")
        with api_server(env, Path(logs)) as base:
            results = asyncio.run(measure(base, url, args))

    rows = []
    for label, figures in results.items():
        rates, p50s, p99s = ([f[i] for f in figures] for i in range(3))
        rows.append([label, fmt(rates, 0), fmt(p50s, 1), fmt(p99s, 1)])
    ratios = {}
    for verb in ("POST", "GET"):
        api = [f[0] for f in results[f"{verb} api"]]
        raw = [f[0] for f in results[f"{verb} raw"]]
        ratios[verb] = [a / b for a, b in zip(api, raw, strict=True)]
        print(
            f"{verb}: API/raw = {fmt(ratios[verb])} (per round: "
            f"{', '.join(f'{x:.2f}' for x in ratios[verb])})"
            + (f"; target >= {TARGET_RATIO:.2f}" if verb == "POST" else "")
        )
    table = md_table(["side", "req/s", "p50 ms", "p99 ms"], rows)
    print("\n" + table)
    if not args.no_doc:
        body = (
            f"{args.requests} requests per side per round at concurrency {args.concurrency}, "
            f"{args.rounds} rounds, sides alternated; each cell median (min-max over rounds).\n\n"
            + table
            + f"\n\nAPI/raw req/s: POST {fmt(ratios['POST'])} (target >= {TARGET_RATIO:.2f}), "
            f"GET {fmt(ratios['GET'])}.\n" + (f"\n{args.note}\n" if args.note else "")
        )
        append_section("API request rates vs raw SQL (`benchmarks/api_rates.py`)", command, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
