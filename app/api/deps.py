"""Typed FastAPI dependencies (Annotated aliases)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.state import ApiState
from app.auth.tokens import LOCAL_OWNER, Principal, authenticate
from app.errors import Unauthorized


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.cerebros
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    description="`Authorization: Bearer <token>`; tokens come from `cerebros token create`.",
)


async def get_principal(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller, from the bearer token (or the single "local" owner when auth is off).

    The token itself never appears in an error body or a log line.
    """
    if not state.settings.auth_enabled:
        return Principal(owner=LOCAL_OWNER)
    if credentials is None:
        raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    async with state.sessions() as session:
        principal = await authenticate(session, credentials.credentials)
    if principal is None:
        raise Unauthorized("the bearer token is invalid or revoked", error="invalid_token")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_owner(principal: PrincipalDep) -> str | None:
    """The owner filter of the caller's reads: their own runs, or every run (None) for admins."""
    return principal.scope


OwnerDep = Annotated[str | None, Depends(get_owner)]
