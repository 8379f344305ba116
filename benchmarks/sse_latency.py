"""SSE commit-to-client latency: writer, clients and API each in a process of their own.

One API process (`cerebros serve`, auth off) on a fresh database; one run's stream opened by
N raw-socket clients, all in *one* client process (a `selectors` loop, no HTTP library: a
regular expression finds each frame's `id:`); events inserted by a writer process, one
commit each, `--interval` apart (a warm-up event first, which every client must have before
the timed ones start). Latency is, for every (client, event), the time from the insert's
commit returning in the writer to the client process reading the frame (both clocks are
CLOCK_MONOTONIC). Recorded with each figure: deliveries / expected, the API's RSS (idle, all
clients connected, end), the load average (1 min) before and after.

With `--baseline REV` the same rounds run against the code of commit REV too (extracted with
`git archive`, served from that tree on the same database), sides alternated in every
repeat (old, new, then new, old, ...).

Usage (from the repository root; a Postgres as for the tests):
    python -m benchmarks.sse_latency [--repeats 3] [--sizes 1,1000] [--baseline REV]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import re
import select
import shlex
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import psycopg

from app.db.urls import libpq_url
from benchmarks._db import fresh_database, md_table, nproc, percentile
from tests.support.processes import free_port, wait_http

REPO = Path(__file__).resolve().parents[1]
EVENT_NAME = "cerebros.nas.trial.epoch"
ID_LINE = re.compile(rb"\nid: (\d+)\n")
# Per size: events per round and seconds between them (1 client: more events for a p99).
PLAN = {1: (200, 0.02), 1000: (20, 0.2)}
DEFAULT_PLAN = (20, 0.2)


# --- the client process ---------------------------------------------------------------------


def run_clients(port: int, path: str, count: int, pipe: Connection) -> None:
    """Open `count` SSE streams on raw sockets; report when opened, then receipt times.

    One epoll loop over plain file descriptors (`os.read`), so that reading costs the
    client process as little as Python allows: its delays are part of every figure.
    """
    poller = select.epoll()
    sockets: dict[int, socket.socket] = {}
    buffers: dict[int, bytes] = {}
    last_ids: dict[int, int | None] = {}

    def open_stream(last_id: int | None = None) -> None:
        resume = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Accept: text/event-stream\r\n{resume}\r\n".encode()
        )
        sock.setblocking(False)
        sockets[sock.fileno()] = sock
        buffers[sock.fileno()] = b""
        last_ids[sock.fileno()] = last_id
        poller.register(sock.fileno(), select.EPOLLIN)

    def close(fd: int) -> int | None:
        poller.unregister(fd)
        sockets.pop(fd).close()
        opened.discard(fd)
        return last_ids.pop(fd)

    started = time.monotonic()
    for _ in range(count):
        open_stream()
    opened: set[int] = set()
    announced = False
    refused = 0  # opens answered with something else than 200 (then tried again)
    reopened = 0  # streams the server ended, resumed with Last-Event-ID
    received: dict[int, list[float]] = defaultdict(list)
    watch: int | None = None  # an event id every client must get (the warm-up)
    expect: list[int] = []
    deadline: float | None = None
    read, find_ids, monotonic = os.read, ID_LINE.finditer, time.monotonic
    while True:
        if pipe.poll():
            command = pipe.recv()
            if command[0] == "watch":
                watch = command[1]
            elif command[0] == "collect":
                expect, deadline = command[1], monotonic() + command[2]
        for fd, _ in poller.poll(0.02):
            data = read(fd, 1 << 18)
            now = monotonic()
            if not data:  # the server ended the stream (stream.reconnect): resume it
                reopened += 1
                open_stream(close(fd))
                continue
            buf = buffers[fd] + data if buffers[fd] else data
            if fd not in opened:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    buffers[fd] = buf
                    continue
                if not buf.startswith(b"HTTP/1.1 200"):  # e.g. a 503 while the pool is busy
                    refused += 1
                    open_stream(close(fd))
                    continue
                opened.add(fd)
                buf = buf[end + 2 :]  # keep a "\r\n" so the first id line follows a newline
                if len(opened) == count and not announced:
                    announced = True
                    pipe.send(("opened", now - started, refused))
            buf = buf.replace(b"\r\n", b"\n")  # frames may end lines with either
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                buffers[fd] = buf
                continue
            for match in find_ids(buf, 0, cut + 1):
                event_id = int(match.group(1))
                received[event_id].append(now)
                last_ids[fd] = event_id
            buffers[fd] = buf[cut + 1 :]  # from the newline before whatever follows
        if watch is not None and len(received.get(watch, ())) >= count:
            pipe.send(("watched", watch))
            watch = None
        if deadline is not None and (
            monotonic() > deadline or all(len(received.get(i, ())) >= count for i in expect)
        ):
            pipe.send(("received", {i: received.get(i, []) for i in expect}, reopened))
            break
    for sock in sockets.values():
        sock.close()


# --- the writer process ---------------------------------------------------------------------


def run_writer(conninfo: str, run_id: str, pipe: Connection) -> None:
    """Insert events on command, one commit each; send back (id, commit-returned time).

    It runs at a higher priority (it is idle but for its inserts) so that the time is taken
    as soon as the commit returns, not when a busy core gets round to it.
    """
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    with psycopg.connect(conninfo, autocommit=True) as conn:

        def insert(payload: dict[str, object]) -> tuple[int, float]:
            row = conn.execute(
                "INSERT INTO run_events (run_id, name, payload) VALUES (%s, %s, %s) RETURNING id",
                (run_id, EVENT_NAME, json.dumps(payload)),
            ).fetchone()
            assert row is not None
            return int(row[0]), time.monotonic()

        while True:
            command = pipe.recv()
            if command[0] == "one":
                pipe.send(insert({"warm_up": True}))
            elif command[0] == "burst":
                count, interval = command[1], command[2]
                start = time.monotonic()
                sent = []
                for i in range(count):
                    pause = start + i * interval - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                    sent.append(insert({"epoch": i, "metrics": {"loss": 0.5, "accuracy": 0.9}}))
                pipe.send(sent)
            elif command[0] == "finish":
                conn.execute(
                    "INSERT INTO run_events (run_id, name) VALUES (%s, %s)",
                    (run_id, "cerebros.nas.run.completed"),
                )
                conn.execute("UPDATE runs SET status = 'succeeded' WHERE id = %s", (run_id,))
                pipe.send("done")
                return


# --- one round --------------------------------------------------------------------------------


@dataclass
class Round:
    side: str
    clients: int
    events: int
    latencies_ms: list[float] = field(default_factory=list)
    delivered: int = 0
    expected: int = 0
    connect_s: float = 0.0
    rss_mib: dict[str, float] = field(default_factory=dict)
    load: tuple[float, float] = (0.0, 0.0)
    api_cpu_s: float = 0.0  # the API's CPU time over the timed events
    refused_opens: int = 0  # stream opens answered 503 (busy pool) and tried again
    reopened: int = 0  # streams the server ended (stream.reconnect), resumed by the client

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99) if self.latencies_ms else float("nan")


def load_1min() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def api_process(tree: Path, database_url: str, log: Path) -> Iterator[tuple[int, int]]:
    """`cerebros serve` from `tree` (its own code first on the path); yields (port, pid)."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CEREBROS_AUTH": "false",
        "CEREBROS_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(tree),
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=tree,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=60)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def one_round(
    side: str,
    tree: Path,
    database_url: str,
    clients: int,
    log_dir: Path,
    profile: Path | None = None,
    pin: bool = True,
) -> Round:
    events, interval = PLAN.get(clients, DEFAULT_PLAN)
    conninfo = libpq_url(database_url)
    run_id = str(uuid.uuid4())
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (id, status, spec) VALUES (%s, 'running', %s)",
            (run_id, json.dumps({"dataset_id": "iris"})),
        )
    result = Round(side, clients, events, expected=clients * events)
    ctx = mp.get_context("spawn")
    with api_process(tree, database_url, log_dir / f"api-{side}.log") as (port, pid):
        result.rss_mib["idle"] = rss_mib(pid)
        load_before = load_1min()
        client_end, client_pipe = ctx.Pipe()
        writer_end, writer_pipe = ctx.Pipe()
        path = f"/runs/{run_id}/events/stream"
        client = ctx.Process(target=run_clients, args=(port, path, clients, client_pipe))
        writer = ctx.Process(target=run_writer, args=(conninfo, run_id, writer_pipe))
        client.start()
        writer.start()
        if pin and nproc() >= 2:  # the API on one core, the clients and the writer on another
            os.sched_setaffinity(pid, {0})
            for proc in (client, writer):
                assert proc.pid is not None
                os.sched_setaffinity(proc.pid, {1})
        try:
            kind, result.connect_s, result.refused_opens = client_end.recv()
            assert kind == "opened"
            writer_end.send(("one",))
            warm_id, _ = writer_end.recv()
            client_end.send(("watch", warm_id))
            if not client_end.poll(60):
                raise TimeoutError("the warm-up event did not reach every client")
            client_end.recv()
            result.rss_mib["connected"] = rss_mib(pid)
            spy = None
            if profile is not None:  # py-spy on the API for the timed events only
                spy = subprocess.Popen(
                    ["py-spy", "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
                     "--output", str(profile / f"{side.split()[0]}-{clients}.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(1.0)
            cpu_before = cpu_s(pid)
            writer_end.send(("burst", events, interval))
            sent: list[tuple[int, float]] = writer_end.recv()
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
            client_end.send(("collect", [i for i, _ in sent], 30.0))
            kind, received, result.reopened = client_end.recv()
            assert kind == "received"
            result.api_cpu_s = cpu_s(pid) - cpu_before
            result.rss_mib["end"] = rss_mib(pid)
            writer_end.send(("finish",))
            writer_end.recv()
        finally:
            client.join(30)
            writer.join(30)
            for proc in (client, writer):
                if proc.is_alive():
                    proc.kill()
        result.load = (load_before, load_1min())
    committed = dict(sent)
    for event_id, times in received.items():
        result.latencies_ms += [(t - committed[event_id]) * 1000 for t in times]
    result.delivered = len(result.latencies_ms)
    return result


# --- the whole benchmark ----------------------------------------------------------------------


def extract(rev: str, into: Path) -> Path:
    """The tree of commit `rev` (git archive), to serve the baseline from."""
    archive = subprocess.run(
        ["git", "archive", rev], cwd=REPO, check=True, capture_output=True
    ).stdout
    tree = into / f"tree-{rev[:12]}"
    tree.mkdir()
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(tree, filter="data")
    return tree


def cell(values: list[float], digits: int = 1) -> str:
    if not values:
        return "n/a"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def report(rounds: list[Round], sides: list[tuple[str, str]]) -> str:
    header = [
        "side",
        "clients",
        "events",
        "delivered / expected (each repeat)",
        "p50 ms",
        "p99 ms",
        "max ms",
        "API RSS connected / end MiB",
        "API CPU us / delivery",
        "connect s (opens refused 503; streams ended and resumed)",
        "load 1 min before-after",
    ]
    rows = []
    for label, _ in sides:
        for clients in sorted({r.clients for r in rounds}):
            mine = [r for r in rounds if r.side == label and r.clients == clients]
            if not mine:
                continue
            rows.append(
                [
                    label,
                    clients,
                    mine[0].events,
                    ", ".join(f"{r.delivered}/{r.expected}" for r in mine),
                    cell([r.p50 for r in mine]),
                    cell([r.p99 for r in mine]),
                    cell([max(r.latencies_ms, default=float("nan")) for r in mine]),
                    f"{cell([r.rss_mib['connected'] for r in mine], 0)} / "
                    f"{cell([r.rss_mib['end'] for r in mine], 0)}",
                    cell([r.api_cpu_s / max(r.delivered, 1) * 1e6 for r in mine]),
                    f"{cell([r.connect_s for r in mine])} "
                    f"({', '.join(f'{r.refused_opens}; {r.reopened}' for r in mine)})",
                    ", ".join(f"{r.load[0]:.2f}-{r.load[1]:.2f}" for r in mine),
                ]
            )
    return md_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="1,1000", help="client counts, comma-separated")
    parser.add_argument("--baseline", help="a commit to measure too, alternated with this tree")
    parser.add_argument("--json", type=Path, help="also write every round's figures here")
    parser.add_argument("--profile", type=Path, help="py-spy the API into this folder (raw)")
    parser.add_argument(
        "--no-pin", action="store_true", help="let the processes run on any core (default: the "
        "API on CPU 0, clients and writer on CPU 1)",
    )  # fmt: skip
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    command = "python -m benchmarks.sse_latency " + shlex.join(sys.argv[1:])
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="sse_latency_") as tmp:
        work = Path(tmp)
        sides = [("new", str(REPO))]
        if args.baseline:
            rev = subprocess.run(
                ["git", "rev-parse", args.baseline], cwd=REPO, check=True, capture_output=True,
                text=True,
            ).stdout.strip()  # fmt: skip
            sides.insert(0, (f"old ({rev[:7]})", str(extract(rev, work))))
        with fresh_database("cerebros_sse") as database_url:
            for repeat in range(args.repeats):
                order = sides if repeat % 2 == 0 else sides[::-1]
                for clients in sizes:
                    for label, tree in order:
                        r = one_round(
                            label,
                            Path(tree),
                            database_url,
                            clients,
                            work,
                            args.profile,
                            pin=not args.no_pin,
                        )
                        rounds.append(r)
                        print(
                            f"repeat {repeat + 1} {label} clients={clients}: "
                            f"{r.delivered}/{r.expected} p50={r.p50:.2f} ms p99={r.p99:.2f} ms "
                            f"max={max(r.latencies_ms, default=float('nan')):.1f} ms "
                            f"rss={r.rss_mib} connect={r.connect_s:.1f}s load={r.load} "
                            f"api_cpu={r.api_cpu_s:.2f}s refused_opens={r.refused_opens} "
                            f"reopened={r.reopened}",
                            flush=True,
                        )
    if args.json:
        args.json.write_text(
            json.dumps(
                [{**r.__dict__, "latencies_ms": None, "p50": r.p50, "p99": r.p99} for r in rounds],
                indent=1,
            )
        )
    day = time.strftime("%Y-%m-%d")
    print(f"\nDate {day}, `nproc` = {nproc()}. Command:\n\n```\n{command}\n```\n")
    print(report(rounds, sides))


if __name__ == "__main__":
    main()
