"""Load benchmark: N concurrent-ish POST /runs at a real API, then N idempotent replays.

Starts its own `cerebros serve` (auth on, queued-run limit raised) on a fresh database of the
test server (TEST_DATABASE_URL, local 5432 or embedded Postgres), creates a token, fires the
requests with async httpx at a bounded concurrency, and prints throughput and p50/p99 latency.
Checks that exactly N runs and N jobs exist afterwards and that the replays created nothing.

    python benchmarks/load_post_runs.py --requests 1000 --concurrency 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db.migrate import upgrade
from tests.security.conftest import issue_token, run_spec
from tests.support.postgres import create_database, drop_database, server_url
from tests.support.processes import api_server, service_env


async def fire(
    base: str, token: str, keys: list[str], concurrency: int
) -> tuple[list[int], list[float], float]:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def one(key: str) -> tuple[int, float]:
            async with gate:
                start = time.perf_counter()
                response = await client.post(
                    "/runs",
                    json=run_spec(),
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                )
                return response.status_code, time.perf_counter() - start

        began = time.perf_counter()
        results = await asyncio.gather(*(one(k) for k in keys))
        elapsed = time.perf_counter() - began
    return [c for c, _ in results], [t for _, t in results], elapsed


def report(label: str, codes: list[int], latencies: list[float], elapsed: float) -> None:
    ms = sorted(t * 1000 for t in latencies)
    p99 = ms[min(len(ms) - 1, round(0.99 * len(ms)) - 1)]
    by_code = {c: codes.count(c) for c in sorted(set(codes))}
    print(
        f"{label:>8}: {len(codes)} requests in {elapsed:.2f}s = {len(codes) / elapsed:.0f} req/s; "
        f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms; status {by_code}"
    )


def stored(url: str, owner: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(j.id) FROM runs r LEFT JOIN procrastinate_jobs j "
            "ON j.id = r.job_id WHERE r.owner = %s",
            (owner,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()

    admin = server_url()
    url = create_database(admin, prefix="cerebros_bench")
    try:
        upgrade(url)
        owner = "bench"
        token = issue_token(url, owner)
        env = service_env(
            url, CEREBROS_AUTH="true", CEREBROS_MAX_QUEUED_RUNS_PER_OWNER=str(args.requests + 1)
        )
        keys = [f"bench-{uuid.uuid4()}" for _ in range(args.requests)]
        with tempfile.TemporaryDirectory() as logs, api_server(env, Path(logs)) as base:
            print(f"nproc={os.cpu_count()} requests={args.requests} concurrency={args.concurrency}")
            codes, lat, elapsed = asyncio.run(fire(base, token, keys, args.concurrency))
            report("create", codes, lat, elapsed)
            created = stored(url, owner)
            codes2, lat2, elapsed2 = asyncio.run(fire(base, token, keys, args.concurrency))
            report("replay", codes2, lat2, elapsed2)
            after = stored(url, owner)
        ok = (
            set(codes) == {202}
            and set(codes2) == {200}
            and created == after == (args.requests, args.requests)
        )
        print(f"runs, jobs after create: {created}; after replay: {after}; ok={ok}")
        return 0 if ok else 1
    finally:
        drop_database(admin, url)


if __name__ == "__main__":
    raise SystemExit(main())
