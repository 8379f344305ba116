"""How the CLI reports errors: one or two lines, never a traceback unless `--debug`."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import sqlalchemy.exc
import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from app.client import ClientError
from app.errors import CerebrosError

DEBUG = "cerebros.debug"  # key in the context's meta, set by the global --debug option


class CliError(Exception):
    """A problem the user can fix, said in one line; `code` 2 for bad arguments."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _api_base(request: httpx.Request) -> str:
    url = request.url
    return f"{url.scheme}://{url.netloc.decode()}"


def _problem_lines(exc: ClientError) -> list[str]:
    problem = exc.problem
    detail = " ".join(str(problem.get("detail") or problem.get("title") or "").split())
    lines = [f"error: {exc.status} {detail[:300]}"]
    errors: list[Any] = problem.get("errors") or []
    fields = [f"{e.get('field')}: {e.get('message')}" for e in errors if isinstance(e, dict)]
    if fields:
        lines.append("  " + "; ".join(fields)[:500])
    if exc.status == 401:
        lines.append("  send a token: export CEREBROS_TOKEN=... (`cerebros up` says where it is)")
    return lines


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def describe(exc: BaseException) -> tuple[list[str], int]:
    """The lines to print for `exc` and the exit code."""
    if isinstance(exc, CliError):
        return [f"error: {exc}"], exc.code
    if isinstance(exc, ClientError):
        return _problem_lines(exc), 1
    if isinstance(exc, httpx.RequestError):
        base = _api_base(exc.request)
        reason = _first_line(exc)
        return [f"cannot reach the API at {base}: {reason}; is it running? (cerebros up)"], 1
    if isinstance(exc, CerebrosError):
        return [f"error: {exc.detail}"], 1
    cause = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
    if isinstance(cause, psycopg.errors.UndefinedTable):
        return ["error: the database is not migrated: run `cerebros migrate`"], 1
    if isinstance(cause, psycopg.OperationalError):
        return [f"error: cannot connect to the database: {_first_line(cause)}"], 1
    return [f"error: {type(exc).__name__}: {_first_line(exc)} (--debug shows the traceback)"], 1


class ErrorReportingGroup(TyperGroup):
    """The root command: turns any error of a subcommand into a short message and exit code."""

    # Any: typer types this with the Context of its vendored click, which it does not export.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):  # typer's own control flow
            raise
        except Exception as exc:
            if ctx.meta.get(DEBUG):
                raise
            lines, code = describe(exc)
            for line in lines:
                typer.echo(line, err=True)
            raise typer.Exit(code) from None
