"""GET /runs/{id} of one real API process vs the same SQL run directly, at the same concurrency.

Starts one `cerebros serve` (auth on, one non-admin token: the owner-scoped query) on a fresh
migrated database holding `--runs` runs of that owner with `--trials` trials each, then
measures, alternating which side goes first in each repeat:

- **api**: `GET /runs/{id}` over HTTP/1.1 keep-alive, `--concurrency` connections, from a
  load generator in a separate process (raw asyncio sockets: a few microseconds of client
  CPU per request, unlike an HTTP library);
- **raw**: the statement the API runs for it (`app.runs.reads.RUN_OF_OWNER_SQL`), with the
  same parameters, from the same kind of separate process through a psycopg pool of
  `--concurrency` connections (the row fetched, nothing else done with it).

Each measurement runs `--seconds` after a warm-up; the 1-minute load average is recorded
before it (what else the machine was doing) and after it. The API process's CPU time per
request comes from /proc. Results: median (min-max) over `--repeats`.

    python -m benchmarks.read_path --repeats 5
    python -m benchmarks.read_path --profile    # add a py-spy profile of the API side
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg.types.json import Jsonb

from app.auth.tokens import hash_token, new_token
from app.db.urls import libpq_url
from app.runs.reads import RUN_OF_OWNER_SQL
from app.schemas.runs import RunCreate
from benchmarks._db import DOC, fresh_database, md_table, nproc, percentile
from tests.security.conftest import run_spec
from tests.support.processes import api_server, service_env

TITLE = "GET /runs/{id} vs raw SQL (`benchmarks/read_path.py`)"
TARGET = 0.50
OWNER = "bench-reader"
TRIAL_STATUSES = ["completed", "completed", "pruned", "failed", "running", "queued"]


# --- load generator (runs in its own process: `--client api|raw`) ----------------------------


async def _api_worker(
    host: str, port: int, token: str, ids: list[str], stop: float, out: list[float]
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    try:
        while time.perf_counter() < stop:
            run_id = random.choice(ids)
            request = (
                f"GET /runs/{run_id} HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200") or not body.endswith(b"}"):
                errors += 1
            out.append(time.perf_counter() - began)
    finally:
        writer.close()
    return errors


async def _raw_worker(pool: Any, ids: list[str], stop: float, out: list[float]) -> int:
    while time.perf_counter() < stop:
        params = {"id": uuid.UUID(random.choice(ids)), "owner": OWNER}
        began = time.perf_counter()
        async with pool.connection() as conn:
            row = await (await conn.execute(RUN_OF_OWNER_SQL, params)).fetchone()
        if row is None:
            return 1
        out.append(time.perf_counter() - began)
    return 0


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[pid] = times.user + times.system
    return seconds


async def _backends(admin: Any) -> list[int]:
    """This database's other backends: the API's pool, or the raw side's."""
    sql = (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    )
    return [int(r[0]) for r in await (await admin.execute(sql)).fetchall()]


async def _drive(args: argparse.Namespace) -> dict[str, Any]:
    ids: list[str] = json.loads(Path(args.ids).read_text())
    admin = await psycopg.AsyncConnection.connect(args.database_url, autocommit=True)
    pool = None
    if args.client == "raw":
        from psycopg_pool import AsyncConnectionPool

        pool = AsyncConnectionPool(
            args.database_url, min_size=args.concurrency, max_size=args.concurrency, open=False
        )
        await pool.open(wait=True)
    host, port = args.base.removeprefix("http://").split(":")
    result: dict[str, Any] = {}
    for phase, seconds in (("warmup", args.warmup), ("measure", args.seconds)):
        latencies: list[float] = []
        stop = time.perf_counter() + seconds
        pg0 = _cpu_by_pid(await _backends(admin))
        cpu0 = time.process_time()
        began = time.perf_counter()
        if pool is not None:
            jobs = [_raw_worker(pool, ids, stop, latencies) for _ in range(args.concurrency)]
        else:
            jobs = [
                _api_worker(host, int(port), args.token, ids, stop, latencies)
                for _ in range(args.concurrency)
            ]
        errors = sum(await asyncio.gather(*jobs))
        elapsed = time.perf_counter() - began
        client_cpu = time.process_time() - cpu0
        pg1 = _cpu_by_pid(list(pg0))
        opened = set(await _backends(admin)) - set(pg0)  # connections opened meanwhile
        if phase == "measure":
            ms = [t * 1000 for t in latencies]
            result = {
                "requests": len(ms),
                "errors": errors,
                "rate": len(ms) / elapsed,
                "p50_ms": statistics.median(ms),
                "p99_ms": percentile(ms, 99),
                "client_cpu_s": client_cpu,
                "pg_cpu_s": sum(pg1[pid] - pg0[pid] for pid in pg1),
                "connections_opened": len(opened),
                "elapsed_s": elapsed,
            }
    if pool is not None:
        await pool.close()
    await admin.close()
    return result


def client_main(args: argparse.Namespace) -> int:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    print(json.dumps(asyncio.run(_drive(args))))
    return 0


# --- orchestration ------------------------------------------------------------------------------


def seed(url: str, runs: int, trials: int) -> tuple[str, list[str]]:
    """`runs` runs of OWNER with `trials` trials each (mixed statuses); (token, run ids)."""
    spec = RunCreate.model_validate(run_spec()).model_dump(mode="json", exclude={"run_id"})
    token_id, token = new_token()
    ids = [uuid.uuid4() for _ in range(runs)]
    with psycopg.connect(libpq_url(url), autocommit=True) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO api_tokens (id, token_hash, owner, admin) VALUES (%s, %s, %s, false)",
            (token_id, hash_token(token), OWNER),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO runs (id, owner, status, spec, current_step, started_at)"
                " VALUES (%s, %s, 'running', %s, 'execute', clock_timestamp())",
                [(run_id, OWNER, Jsonb(spec)) for run_id in ids],
            )
            cur.executemany(
                "INSERT INTO trials (run_id, number, status, score, epochs_run, history)"
                " VALUES (%s, %s, %s, %s, 0, '[]')",
                [
                    (run_id, n, TRIAL_STATUSES[n % len(TRIAL_STATUSES)], random.random())
                    for run_id in ids
                    for n in range(trials)
                ],
            )
        conn.execute("ANALYZE runs")
        conn.execute("ANALYZE trials")
    return token, [str(i) for i in ids]


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def api_pid(base: str) -> int:
    port = int(base.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        listening = conn.status == psutil.CONN_LISTEN and conn.laddr
        if listening and conn.laddr.port == port and conn.pid is not None:
            return int(conn.pid)
    raise RuntimeError(f"no process listens on port {port}")


def run_client(
    side: str, base: str, url: str, token: str, ids_file: str, args: argparse.Namespace
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.read_path",
        "--client",
        side,
        "--base",
        base,
        "--database-url",
        libpq_url(url),
        "--token",
        token,
        "--ids",
        ids_file,
        "--concurrency",
        str(args.concurrency),
        "--seconds",
        str(args.seconds),
        "--warmup",
        str(args.warmup),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{side} client failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def profile_api(pid: int, seconds: float, out: Path) -> str:
    """py-spy's view of the API process while it serves (its own busiest functions)."""
    raw = out / "api.pyspy.txt"
    subprocess.run(
        ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250",
         "--format", "raw", "--output", str(raw), "--nonblocking"],
        capture_output=True, check=False, timeout=seconds + 60,
    )  # fmt: skip
    return str(raw)


# The API's frames that say where a request's time goes (py-spy frame names, line dropped).
_UVICORN = "(uvicorn/protocols/http/httptools_impl.py)"
KEY_FRAMES = [
    ("the ASGI app, all of it", f"RequestResponseCycle.run_asgi {_UVICORN}"),
    ("uvicorn: parse the request", f"HttpToolsProtocol.data_received {_UVICORN}"),
    ("FastAPI: route matching", "_IncludedRouter._match (fastapi/routing.py)"),
    ("auth: get_principal (token cache)", "get_principal (app/api/deps.py)"),
    ("endpoint: run_json", "run_json (app/runs/reads.py)"),
    ("  pool checkout/checkin (read_connection)", "read_connection (app/db/session.py)"),
    (
        "  psycopg: send the statement, read the row",
        "AsyncConnection.execute (psycopg/connection_async.py)",
    ),
    ("  progress: stored spec/result parsed", "_progress (app/runs/reads.py)"),
    ("uvicorn: write the response (socket send)", f"RequestResponseCycle.send {_UVICORN}"),
    ("  access log line", "Logger.info (logging/__init__.py)"),
    ("request metrics", "HttpMetrics.__call__.<locals>.record (app/observability/http.py)"),
]


def summarize_profile(raw_file: str) -> list[tuple[str, float]]:
    """(what, % of the API's busy samples) for KEY_FRAMES, from a py-spy raw (collapsed) file.

    Inclusive: a frame's share counts everything it called. py-spy samples wall time while
    the thread is not idle, so a socket send that wakes the peer (and is preempted by it on
    2 cores) counts in full; CPU time per request is in the main table.
    """
    inclusive: dict[str, int] = {}
    total = 0
    for line in Path(raw_file).read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        for frame in {re.sub(r":\d+\)$", ")", f) for f in stack.split(";")}:
            inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return []
    return [(label, 100 * inclusive.get(frame, 0) / total) for label, frame in KEY_FRAMES]


def fmt(values: list[float], digits: int = 0) -> str:
    med = statistics.median(values)
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


READING = "Reading (written by hand; kept when the script rewrites the figures above):"


def write_section(body: str) -> None:
    """Replace this benchmark's section of docs/benchmarks.md (or add it before the ML ones).

    The section's hand-written reading (from the `READING` line to the section's end) is kept.
    """
    text = DOC.read_text()
    head = f"## {TITLE}\n"
    reading = ""
    if head in text:
        start = text.index(head)
        end = text.find("\n## ", start + len(head))
        end = len(text) if end < 0 else end + 1
        old = text[start:end]
        if READING in old:
            reading = "\n" + old[old.index(READING) :].rstrip() + "\n"
    else:
        anchor = text.find("\n## Engine vs KerasTuner")
        start = end = len(text) if anchor < 0 else anchor + 1
    section = head + "\n" + body.rstrip() + "\n" + reading + "\n"
    DOC.write_text(text[:start] + section + text[end:])
    print(f"wrote '{TITLE}' in {DOC}")


def orchestrate(args: argparse.Namespace) -> int:
    command = "python -m benchmarks.read_path " + shlex.join(sys.argv[1:])
    print(f"nproc={nproc()} {command}")
    results: dict[str, list[dict[str, Any]]] = {"api": [], "raw": []}
    profile: list[tuple[str, float]] = []
    with (
        fresh_database("cerebros_bench_read") as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        token, ids = seed(url, args.runs, args.trials)
        ids_file = Path(tmp) / "ids.json"
        ids_file.write_text(json.dumps(ids))
        env = service_env(url, CEREBROS_AUTH="true", CEREBROS_LOG_LEVEL=args.log_level)
        with api_server(env, Path(tmp)) as base:
            pid = api_pid(base)
            for r in range(args.repeats):
                order = ["api", "raw"] if r % 2 == 0 else ["raw", "api"]
                for side in order:
                    load_before = os.getloadavg()[0]
                    cpu0 = cpu_seconds(pid)
                    figures = run_client(side, base, url, token, str(ids_file), args)
                    api_cpu = cpu_seconds(pid) - cpu0
                    figures["load_before"] = load_before
                    figures["load_after"] = os.getloadavg()[0]
                    total = figures["requests"] * (args.seconds + args.warmup) / args.seconds
                    figures["api_cpu_us"] = 1e6 * api_cpu / total if side == "api" else None
                    figures["pg_cpu_us"] = 1e6 * figures["pg_cpu_s"] / figures["requests"]
                    figures["client_cpu_us"] = 1e6 * figures["client_cpu_s"] / figures["requests"]
                    if figures["errors"]:
                        raise RuntimeError(f"{side}: {figures['errors']} failed requests")
                    results[side].append(figures)
                    print(
                        f"  repeat {r + 1} {side}: {figures['rate']:.0f} req/s, p50 "
                        f"{figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, load "
                        f"{load_before:.2f} -> {figures['load_after']:.2f}"
                        + (f", API CPU {figures['api_cpu_us']:.0f} us/req" if side == "api" else "")
                        + f", postgres CPU {figures['pg_cpu_us']:.0f} us/req"
                        + f", client CPU {figures['client_cpu_us']:.0f} us/req"
                        + f", connections opened {figures['connections_opened']}"
                    )
            if args.profile:
                with tempfile.TemporaryDirectory() as prof_dir:
                    holder: dict[str, str] = {}
                    seconds = args.seconds + args.warmup
                    thread = threading.Thread(
                        target=lambda: holder.update(raw=profile_api(pid, seconds, Path(prof_dir)))
                    )
                    thread.start()
                    run_client("api", base, url, token, str(ids_file), args)
                    thread.join()
                    profile = summarize_profile(holder["raw"])
                    for label, share in profile:
                        print(f"  {share:5.1f}%  {label}")

    ratios = [a["rate"] / b["rate"] for a, b in zip(results["api"], results["raw"], strict=True)]
    rows = []
    for side in ("api", "raw"):
        got = results[side]
        rows.append(
            [
                side,
                fmt([g["rate"] for g in got]),
                fmt([g["p50_ms"] for g in got], 1),
                fmt([g["p99_ms"] for g in got], 1),
                fmt([g["load_before"] for g in got], 2),
                fmt([g["load_after"] for g in got], 2),
                fmt([g["api_cpu_us"] for g in got]) if side == "api" else "-",
                fmt([g["pg_cpu_us"] for g in got]),
                fmt([g["client_cpu_us"] for g in got]),
            ]
        )
    opened = sum(g["connections_opened"] for g in results["api"])
    per_repeat = "; ".join(
        f"{i + 1}: api {a['rate']:.0f} (load {a['load_before']:.2f}->{a['load_after']:.2f}) / "
        f"raw {b['rate']:.0f} (load {b['load_before']:.2f}->{b['load_after']:.2f}) = {x:.2f}"
        for i, (a, b, x) in enumerate(zip(results["api"], results["raw"], ratios, strict=True))
    )
    ratio = fmt(ratios, 2)
    met = "met" if statistics.median(ratios) >= TARGET else "missed"
    table = md_table(
        [
            "side",
            "req/s",
            "p50 ms",
            "p99 ms",
            "load avg before",
            "load avg after",
            "API CPU us/req",
            "postgres CPU us/req",
            "client CPU us/req",
        ],
        rows,
    )
    print("\n" + table + f"\n\nAPI/raw {ratio}: target >= {TARGET:.2f} {met}; {per_repeat}")
    if not args.no_doc:
        body = (
            f"Date {time.strftime('%Y-%m-%d')}, `nproc` = {nproc()}, shared by the API, Postgres "
            "and the load generator. One `cerebros serve` (auth on: one non-admin token, so "
            f"the owner-scoped statement; access log on), {args.runs} runs of that owner with "
            f"{args.trials} trials each. Each side's load generator is its own process "
            f"({args.concurrency} connections): **api** sends `GET /runs/{{id}}` on raw "
            "HTTP/1.1 keep-alive sockets, **raw** runs the statement the API runs "
            "(`app.runs.reads.RUN_OF_OWNER_SQL`) through a psycopg pool. "
            f"{args.seconds:g} s measured after {args.warmup:g} s of warm-up per side, "
            f"{args.repeats} repeats, sides alternated (order flipped every repeat); load "
            "average (1 min) recorded before and after each figure; cells: median (min-max). "
            f"Command:\n\n```\n{command}\n```\n\n" + table + "\n\n"
            f"**API/raw: {ratio}** (target >= {TARGET:.2f}: {met}). CPU per request from "
            "/proc: the API process (whole run, warm-up included, over its requests), the "
            "benchmark database's backends and the load generator (measured phase). "
            f"Database connections the API opened during its measured phases: {opened}. "
            f"Per repeat: {per_repeat}.\n"
        )
        if profile:
            body += (
                "\nWhere the API process's busy time goes (py-spy, one more api run of "
                f"{args.seconds + args.warmup:g} s, 250 samples/s; inclusive shares of its "
                "non-idle samples, which count a socket send preempted by the peer it woke):"
                "\n\n"
                + md_table(
                    ["part of a request", "% of samples"],
                    [[label.replace("  ", "- "), f"{share:.1f}"] for label, share in profile],
                )
                + "\n"
            )
        if args.note:
            body += f"\n{args.note}\n"
        write_section(body)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--client", choices=["api", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured per side per repeat")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--trials", type=int, default=12, help="trials per run")
    parser.add_argument("--log-level", default="INFO", help="the API's (INFO: access log on)")
    parser.add_argument("--profile", action="store_true", help="py-spy the API side once more")
    parser.add_argument("--note", default="", help="a paragraph added to the docs section")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    return client_main(args) if args.client else orchestrate(args)


if __name__ == "__main__":
    raise SystemExit(main())
