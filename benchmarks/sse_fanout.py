"""SSE fan-out: N concurrent clients on one run's stream, commit-to-client latency, API RSS.

Starts an API process (`cerebros serve`, auth off) on DATABASE_URL unless `--url` is given,
creates a run row, opens `--clients` httpx SSE streams on it, inserts `--events` event rows
(one commit each, `--interval` apart) and measures, for every (client, event), the time from
the insert's commit returning to the client parsing the event. Prints p50/p99/max latency,
deliveries and the API process's RSS (idle, with all clients connected, at the end).

Usage: ``python -m benchmarks.sse_fanout [--clients 1000] [--events 20] [--url URL --pid PID]``
(the database must be migrated: ``cerebros migrate``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path

import httpx
import psutil
import psycopg

from app.db.urls import libpq_url
from tests.support.processes import api_server, service_env


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def client_task(
    http: httpx.AsyncClient,
    url: str,
    received: dict[int, list[float]],
    ready: asyncio.Event,
) -> None:
    async with http.stream("GET", url) as response:
        response.raise_for_status()
        ready.set()
        event_id: int | None = None
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                event_id = int(line[3:])
            elif line == "" and event_id is not None:
                received.setdefault(event_id, []).append(time.perf_counter())
                event_id = None
            elif line.startswith("event: stream.end"):
                return


def rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    proc = psutil.Process(pid)
    total = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(True))
    return total / 2**20


async def bench(base: str, database_url: str, pid: int | None, args: argparse.Namespace) -> None:
    conninfo = libpq_url(database_url)
    run_id = uuid.uuid4()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (id, status, spec) VALUES (%s, 'running', %s)",
            (run_id, json.dumps({"dataset_id": "iris"})),
        )
    rss_idle = rss_mib(pid)
    url = f"{base}/runs/{run_id}/events/stream"
    received: dict[int, list[float]] = {}
    limits = httpx.Limits(max_connections=args.clients + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(60, read=300, pool=120)
    started = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        ready = [asyncio.Event() for _ in range(args.clients)]
        tasks = [asyncio.create_task(client_task(http, url, received, r)) for r in ready]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 300)
        connect_s = time.perf_counter() - started
        await asyncio.sleep(1)
        rss_connected = rss_mib(pid)
        committed: dict[int, float] = {}
        writer = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        async with writer:
            for i in range(args.events):
                cur = await writer.execute(
                    "INSERT INTO run_events (run_id, name, payload) VALUES (%s, %s, %s)"
                    " RETURNING id",
                    (run_id, "cerebros.nas.trial.epoch", json.dumps({"epoch": i})),
                )
                row = await cur.fetchone()
                assert row is not None
                committed[int(row[0])] = time.perf_counter()
                await asyncio.sleep(args.interval)
            await writer.execute(
                "INSERT INTO run_events (run_id, name) VALUES (%s, 'cerebros.nas.run.completed')",
                (run_id,),
            )
            await writer.execute("UPDATE runs SET status = 'succeeded' WHERE id = %s", (run_id,))
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 120)
    rss_end = rss_mib(pid)
    latencies = [
        (t - committed[event_id]) * 1000
        for event_id, times in received.items()
        if event_id in committed
        for t in times
    ]
    delivered = len(latencies)
    expected = args.clients * args.events
    print(f"clients={args.clients} events={args.events} interval={args.interval}s")
    print(f"all clients connected in {connect_s:.1f}s")
    print(f"deliveries {delivered}/{expected}")
    if latencies:
        print(
            f"commit-to-client latency ms: p50={statistics.median(latencies):.1f} "
            f"p99={percentile(latencies, 0.99):.1f} max={max(latencies):.1f}"
        )
    for label, value in (("idle", rss_idle), ("connected", rss_connected), ("end", rss_end)):
        if value is not None:
            print(f"API RSS {label}: {value:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between inserts")
    parser.add_argument("--url", help="an API already running (default: start one)")
    parser.add_argument("--pid", type=int, help="PID of that API, for its RSS")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    if not args.database_url:
        parser.error("--database-url or DATABASE_URL is required (events are inserted by SQL)")
    if args.url:
        asyncio.run(bench(args.url, args.database_url, args.pid, args))
        return
    log_dir = Path("/tmp/sse_fanout")
    log_dir.mkdir(exist_ok=True)
    env = service_env(args.database_url, CEREBROS_AUTH="false")
    with api_server(env, log_dir) as base:
        pid = next(
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if "serve" in (p.info["cmdline"] or []) and base.rsplit(":", 1)[1] in p.info["cmdline"]
        )
        asyncio.run(bench(base, args.database_url, pid, args))


if __name__ == "__main__":
    main()
