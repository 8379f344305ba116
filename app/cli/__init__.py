"""`cerebros` command line: run the service, manage tokens, and talk to the API.

Running the service: up, down, serve, worker, migrate, db. Talking to the API: submit, runs,
events, cancel, trials, run.
"""

from __future__ import annotations

from typing import Annotated

import typer

from app.auth.cli import token_cli
from app.cli import client, datasets, db, local_run, service
from app.cli.errors import DEBUG, ErrorReportingGroup

cli = typer.Typer(
    cls=ErrorReportingGroup,
    help="Cerebros NAS run service: API, queue worker, database, and a client of the API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # --debug prints Python's plain traceback
)


@cli.callback()
def options(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of an error.")
    ] = False,
) -> None:
    """Cerebros NAS run service: API, queue worker, database, and a client of the API."""
    ctx.meta[DEBUG] = debug


service.register(cli)  # up, down, serve, worker, migrate
cli.add_typer(db.db_cli, name="db")  # cerebros db url|psql|start|stop
cli.add_typer(token_cli, name="token")  # cerebros token create|list|revoke
client.register(cli)  # submit, runs, events, cancel, trials: over HTTP only
local_run.register(cli)  # run SPEC [--local]
cli.add_typer(datasets.datasets_cli, name="datasets")  # upload|list|show|delete


def main() -> None:
    cli()
