"""`cerebros token create|list|revoke`: manage bearer API tokens (straight on the database)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import tokens
from app.config import get_settings
from app.db.auth_models import ApiToken
from app.db.session import create_engine, create_session_factory, resolve_database_url

T = TypeVar("T")

token_cli = typer.Typer(help="Bearer API tokens: create, list, revoke.", no_args_is_help=True)


async def _in_transaction(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with create_session_factory(engine).begin() as session:
            return await work(session)
    finally:
        await engine.dispose()


def run_in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one committed transaction on the configured database."""
    return asyncio.run(_in_transaction(resolve_database_url(get_settings()), work))


def create_token(owner: str, *, admin: bool = False) -> tuple[ApiToken, str]:
    """Create a token on the configured database; (row, token)."""
    return run_in_transaction(lambda s: tokens.create_token(s, owner, admin=admin))


@token_cli.command("create")
def create(
    owner: Annotated[str, typer.Option(help="Owner the token acts as (its runs belong to it).")],
    admin: Annotated[bool, typer.Option(help="Sees and cancels every owner's runs.")] = False,
) -> None:
    """Create a token and print it once (only its sha256 is stored)."""
    try:
        row, token = create_token(owner, admin=admin)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--owner") from exc
    typer.echo(token)
    kind = "admin token" if row.admin else "token"
    typer.echo(
        f"{kind} {tokens.display_prefix(row.id)} for owner {row.owner!r}; "
        "store it now, it cannot be shown again",
        err=True,
    )


@token_cli.command("list")
def list_(
    active: Annotated[bool, typer.Option("--active", help="Leave out revoked tokens.")] = False,
) -> None:
    """Tokens: id, owner, admin flag, created and revoked times (never the token)."""
    rows = run_in_transaction(lambda s: tokens.list_tokens(s, include_revoked=not active))
    table = Table("id", "owner", "admin", "created_at", "revoked_at")
    for row in rows:
        table.add_row(
            tokens.display_prefix(row.id),
            row.owner,
            "yes" if row.admin else "",
            row.created_at.isoformat(timespec="seconds"),
            row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "",
        )
    Console().print(table)


@token_cli.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="Token id or a unique prefix (cer_ optional).")],
) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    try:
        row = run_in_transaction(lambda s: tokens.revoke_token(s, token_id))
    except tokens.TokenNotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"revoked {tokens.display_prefix(row.id)} (owner {row.owner!r})")
