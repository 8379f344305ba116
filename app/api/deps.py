"""Typed FastAPI dependencies (Annotated aliases)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.state import ApiState


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.cerebros
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def get_owner() -> str:
    """The caller's identity; every run belongs to one owner."""
    return "local"


OwnerDep = Annotated[str, Depends(get_owner)]
