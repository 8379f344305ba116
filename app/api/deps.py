"""Typed FastAPI dependencies (Annotated aliases).

Every dependency is `async def`: FastAPI runs a plain `def` dependency in its threadpool,
a thread hop per dependency per request.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.state import ApiRuntime
from app.auth.cache import TokenCache
from app.auth.tickets import MAX_TICKET_LENGTH, StreamTickets
from app.auth.tokens import LOCAL_OWNER, Principal, read_principal, read_token_is_active
from app.db.session import read_connection
from app.errors import Unauthorized


async def get_state(request: Request) -> ApiRuntime:
    """The API process's runtime, built by the app's lifespan."""
    state: ApiRuntime = request.app.state.cerebros
    return state


StateDep = Annotated[ApiRuntime, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    description="`Authorization: Bearer <token>`; tokens come from `cerebros token create`.",
)


def get_token_cache(request: Request) -> TokenCache:
    cache: TokenCache = request.app.state.token_cache
    return cache


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller, from the bearer token (or the single "local" owner when auth is off).

    A token checked less than `CEREBROS_AUTH_CACHE_SECONDS` ago is trusted without a
    database read (`app.auth.cache`); otherwise it is read in one statement. The token itself
    never appears in an error body or a log line.
    """
    state: ApiRuntime = request.app.state.cerebros  # not StateDep: one dependency fewer to solve
    if not state.settings.auth_enabled:
        return Principal(owner=LOCAL_OWNER)
    if credentials is None:
        raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)")

    async def check(token: str) -> Principal | None:
        async with read_connection(state.engine) as conn:
            return await read_principal(conn, token)

    principal = await get_token_cache(request).principal(credentials.credentials, check)
    if principal is None:
        raise Unauthorized("the bearer token is invalid or revoked", error="invalid_token")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_owner(principal: PrincipalDep) -> str | None:
    """The owner filter of the caller's reads: their own runs, or every run (None) for admins."""
    return principal.scope


OwnerDep = Annotated[str | None, Depends(get_owner)]


async def get_stream_tickets(request: Request) -> StreamTickets:
    tickets: StreamTickets = request.app.state.stream_tickets
    return tickets


TicketQuery = Annotated[
    str | None,
    Query(
        max_length=MAX_TICKET_LENGTH,
        description="A stream ticket from `POST /events/tickets`, for clients that cannot send "
        "headers (a browser's EventSource); single use, short-lived. The Authorization header "
        "wins when both are sent.",
    ),
]


async def get_stream_principal(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ticket: TicketQuery = None,
) -> Principal:
    """The caller of an event stream: from the bearer token, else from a stream ticket.

    The ticket is used up here (FastAPI resolves a dependency once per request); it must
    be for this run's stream (or for any), unexpired, and its token still valid.
    """
    if not state.settings.auth_enabled or credentials is not None or ticket is None:
        return await get_principal(request, credentials)
    try:
        run_id = uuid.UUID(str(request.path_params["run_id"]))
    except KeyError:
        run_id = None  # the global stream
    except ValueError as exc:
        raise Unauthorized(
            "the stream ticket is not for this stream", error="invalid_token"
        ) from exc
    principal = (await get_stream_tickets(request)).redeem(ticket, run_id)
    if principal is not None and principal.token_id is not None:
        # Not cached: a ticket is redeemed once, and must not outlive its token's revocation.
        async with read_connection(state.engine) as conn:
            if not await read_token_is_active(conn, principal.token_id):
                principal = None
    if principal is None:
        raise Unauthorized(
            "the stream ticket is invalid, used, expired or for another stream "
            "(POST /events/tickets issues one)",
            error="invalid_token",
        )
    return principal


StreamPrincipalDep = Annotated[Principal, Depends(get_stream_principal)]


async def get_stream_owner(principal: StreamPrincipalDep) -> str | None:
    """As `get_owner`, for a stream's caller (bearer token or stream ticket)."""
    return principal.scope


StreamOwnerDep = Annotated[str | None, Depends(get_stream_owner)]
