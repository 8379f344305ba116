"""`cerebros up|down|serve|worker|migrate`: run and stop the service on this machine."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
from typing import Annotated

import typer

from app.cli.db import display_url, use_database
from app.cli.errors import CliError
from app.cli.up_record import Started, UpRecord, current, stop_processes
from app.config import get_settings
from app.db.embedded import locate_cluster
from app.observability.logs import LogFormat, bind_worker, configure_logging, logging_config
from app.observability.metrics import serve_worker_metrics
from app.queue.supervisor import (
    Supervisor,
    become_child,
    default_processes,
    probe_database,
    tag_text_logs,
)

HostOpt = Annotated[str, typer.Option(help="Interface the API listens on.")]
PortOpt = Annotated[int, typer.Option(help="TCP port of the API.")]
ConcurrencyOpt = Annotated[
    int, typer.Option(help="Jobs one worker process runs at once (each process, with --processes).")
]
ProcessesOpt = Annotated[
    int | None,
    typer.Option(
        help="Worker processes (Keras trains one model per process); default: one per core. "
        "1 runs the worker in this process.",
        show_default=False,
    ),
]

# Open SSE streams would hold a graceful shutdown forever; after this they are cut.
GRACEFUL_SHUTDOWN_S = 10
WORKER_STOP_S = 30
# What a worker supervisor needs beyond WORKER_STOP_S to kill what is left and exit.
SUPERVISOR_MARGIN_S = 10


def setup_logging() -> None:
    """Text or JSON lines on stderr (CEREBROS_LOG_FORMAT, CEREBROS_LOG_LEVEL)."""
    settings = get_settings()
    configure_logging(LogFormat(settings.log_format), settings.log_level)


def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations (the queue's schema included) up to REVISION."""
    from app.db.migrate import upgrade

    setup_logging()
    url = use_database(get_settings())
    upgrade(url, revision)
    typer.echo(f"database at {display_url(url)} migrated to {revision}")


def serve(host: HostOpt = "127.0.0.1", port: PortOpt = 8000) -> None:
    """Run the HTTP API under uvicorn (the database must be migrated)."""
    import uvicorn

    from app.api.main import create_app

    setup_logging()
    use_database(get_settings())
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        # uvicorn's own lines (access log included) go through our handler, in our format.
        log_config=logging_config(LogFormat(settings.log_format), settings.log_level),
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


def worker(
    concurrency: ConcurrencyOpt = 1,
    queue: Annotated[list[str] | None, typer.Option(help="Queues to take jobs from.")] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve this worker's Prometheus metrics on this port (0: any free); "
            "with --processes N, process k uses PORT+k-1."
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Interface of the metrics port (0.0.0.0 in a container).")
    ] = "127.0.0.1",
    processes: ProcessesOpt = None,
    stop_timeout: Annotated[
        float,
        typer.Option(
            help="With --processes N > 1: seconds the worker processes may finish their runs "
            "after SIGTERM/SIGINT before they are killed (their runs are then retried)."
        ),
    ] = WORKER_STOP_S,
    child: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run queue workers that execute NAS runs from the `ml` queue.

    With --processes N > 1 (the default on a machine with several cores) a supervisor runs N
    worker processes, restarts one that dies, and on SIGTERM/SIGINT lets each finish its run.
    """
    setup_logging()
    count = default_processes() if processes is None else processes
    if count < 1:
        raise CliError("--processes must be at least 1")
    if child is None and count > 1:
        raise typer.Exit(
            _supervise(count, concurrency, queue, metrics_port, metrics_host, stop_timeout)
        )

    from app.queue.worker import run_worker

    if child is not None:
        own = get_settings()
        tag_text_logs(become_child(child, own.supervisor_pid, own.pg_application_name))
    bind_worker(f"{socket.gethostname()}:{os.getpid()}")  # on every line of this process
    url = use_database(get_settings())
    settings = get_settings()
    if metrics_port is not None:
        bound = serve_worker_metrics(metrics_port, metrics_host)
        logging.getLogger(__name__).info(
            "worker metrics at http://%s:%d/metrics", metrics_host, bound
        )
    asyncio.run(
        run_worker(url, settings, queues=queue or [settings.queue_name], concurrency=concurrency)
    )


def _supervise(
    processes: int,
    concurrency: int,
    queues: list[str] | None,
    metrics_port: int | None,
    metrics_host: str,
    stop_timeout: float,
) -> int:
    """Run `processes` single workers under a supervisor (app/queue/supervisor.py)."""
    bind_worker(f"{socket.gethostname()}:{os.getpid()}")
    url = use_database(get_settings())  # resolved once (the embedded server started here)
    problem = probe_database(url)
    if problem is not None:
        raise CliError(f"the database at {display_url(url)} is unusable: {problem}")

    def command(index: int) -> list[str]:
        argv = [sys.executable, "-m", "app.cli", "worker", "--processes", "1"]
        argv += ["--child", str(index), "--concurrency", str(concurrency)]
        for name in queues or []:
            argv += ["--queue", name]
        if metrics_port is not None:
            port = metrics_port + index - 1 if metrics_port else 0
            argv += ["--metrics-port", str(port), "--metrics-host", metrics_host]
        return argv

    env = {**os.environ, "DATABASE_URL": url}
    return Supervisor(command, processes, env=env, stop_timeout_s=stop_timeout).run()


def _print_local_token(base: str) -> None:
    """Print the local admin token of `up` as a command that reads it from its file.

    `up` is for one person on one machine: an admin token for owner "local", kept in an 0600
    file of the data dir and reused. Printed as a command that reads it, the token itself stays
    out of terminal scrollback and captured logs.
    """
    from app.cli.local_token import local_admin_token

    local = local_admin_token(get_settings().data_dir)
    state = "reused" if local.reused else "new"
    typer.echo(
        f"API token ({state}; admin, owner 'local', id {local.display_id}) in {local.path}; "
        "`cerebros token revoke ID` revokes it, the next `up` makes a new one:"
    )
    typer.echo(f'  export CEREBROS_TOKEN="$(cat {shlex.quote(str(local.path))})"')
    typer.echo(f'  curl -H "Authorization: Bearer $CEREBROS_TOKEN" {base}/runs')


def up(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    concurrency: ConcurrencyOpt = 1,
    processes: ProcessesOpt = None,
) -> None:
    """All in one: database (embedded if DATABASE_URL is unset), migrations, workers, API.

    The worker runs --processes worker processes (one per core by default) under one
    supervisor. `cerebros down` (another terminal) or Ctrl+C stops the API and the workers;
    the embedded database keeps running until `cerebros down`.
    """
    from app.db.migrate import upgrade

    setup_logging()
    count = default_processes() if processes is None else processes
    if count < 1:
        raise CliError("--processes must be at least 1")
    # Alembic's INFO lines would bury the database, token and curl lines printed below.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    data_dir = get_settings().data_dir
    running = UpRecord.read(data_dir)
    if running is not None and running.alive():
        raise CliError(
            f"`cerebros up` already runs (pid {running.up.pid}, API at {running.api}); "
            "`cerebros down` stops it"
        )
    url = use_database(get_settings())
    upgrade(url)
    base = f"http://{host}:{port}"
    typer.echo(f"database: {display_url(url)}")
    if get_settings().auth_enabled:
        _print_local_token(base)
    data_dir.mkdir(parents=True, exist_ok=True)
    worker_args = ["--processes", str(count), "--concurrency", str(concurrency)]
    worker_args += ["--stop-timeout", str(WORKER_STOP_S)]
    worker_proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", *worker_args])
    UpRecord(current(), Started.of(worker_proc.pid), base).write(data_dir)
    # uvicorn re-raises the SIGTERM it shut down on once it has finished; with the default
    # handler that would kill this process before the `finally` stops the worker.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        serve(host=host, port=port)
    finally:
        worker_proc.send_signal(signal.SIGTERM)
        try:
            # A supervisor gives its processes WORKER_STOP_S, then kills them and exits.
            worker_proc.wait(timeout=WORKER_STOP_S + SUPERVISOR_MARGIN_S)
        except subprocess.TimeoutExpired:
            worker_proc.kill()  # its worker processes die with it (app/queue/supervisor.py)
            worker_proc.wait()
        UpRecord.remove(data_dir, owner_pid=os.getpid())


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def down() -> None:
    """Stop what `cerebros up` started: its API and worker, and the embedded PostgreSQL."""
    settings = get_settings()
    stopped: list[str] = []
    record = UpRecord.read(settings.data_dir)
    if record is not None:
        processes = record.alive()
        if processes:
            # The worker finishes its run for up to WORKER_STOP_S (it is retried at the
            # next start after that); `up` waits for it before it exits. A supervisor's
            # worker processes get the stop from it, and are killed if they outlive it.
            children = record.worker_children()
            timeout = WORKER_STOP_S + SUPERVISOR_MARGIN_S + GRACEFUL_SHUTDOWN_S + 10
            stop_processes(processes, timeout=timeout, descendants=children)
            pids = ", ".join(str(p.pid) for p in processes + children)
            stopped.append(f"the API at {record.api} and its worker (pids {pids})")
        UpRecord.remove(settings.data_dir)
    if settings.database_url:
        typer.echo("DATABASE_URL is set: its server is not one `cerebros` stops")
    elif settings.embedded_database:
        cluster = locate_cluster(settings.data_dir)
        if cluster.stop():
            stopped.append(f"the embedded PostgreSQL in {cluster.pgdata}")
    if stopped:
        for line in stopped:
            typer.echo(f"stopped {line}")
    else:
        typer.echo("nothing was running")


def register(cli: typer.Typer) -> None:
    """Add the service commands to the `cerebros` app."""
    for command in (up, down, serve, worker, migrate):
        cli.command()(command)
