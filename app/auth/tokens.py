"""Token format, hashing and every read/write of the api_tokens table.

A token reads `cer_<id>_<secret>`: `id` (12 hex digits) is the public handle shown by
`cerebros token list` and used to revoke; `secret` comes from `secrets.token_urlsafe`. Only
sha256(token) is stored, so a leaked table does not leak usable tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.auth_models import ApiToken

TOKEN_PREFIX = "cer_"
ID_HEX_DIGITS = 12
SECRET_BYTES = 32
MAX_TOKEN_LENGTH = 200  # anything longer is not one of ours: rejected before hashing
LOCAL_OWNER = "local"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the owner their runs belong to; admins see every owner's runs."""

    owner: str
    admin: bool = False
    token_id: str | None = None

    @property
    def scope(self) -> str | None:
        """The owner filter for repository calls (None: every owner)."""
        return None if self.admin else self.owner


class TokenNotFound(LookupError):
    """No token, or more than one, matches an id or prefix."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> tuple[str, str]:
    """(id, token) of a fresh random token."""
    token_id = secrets.token_hex(ID_HEX_DIGITS // 2)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(SECRET_BYTES)}"


def token_id_of(token: str) -> str | None:
    """The id part of a well-formed token, else None (no database access for junk)."""
    if len(token) > MAX_TOKEN_LENGTH or not token.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or not secret or len(token_id) != ID_HEX_DIGITS:
        return None
    if any(c not in "0123456789abcdef" for c in token_id):
        return None
    return token_id


def display_prefix(token_id: str) -> str:
    return f"{TOKEN_PREFIX}{token_id}"


async def create_token(
    session: AsyncSession, owner: str, *, admin: bool = False
) -> tuple[ApiToken, str]:
    """Store a new token for `owner`; return the row and the token (shown once, never stored)."""
    owner = owner.strip()
    if not owner or len(owner) > 100:
        raise ValueError("owner must be 1-100 characters")
    token_id, token = new_token()
    row = ApiToken(id=token_id, token_hash=hash_token(token), owner=owner, admin=admin)
    session.add(row)
    await session.flush()
    return row, token


async def authenticate(session: AsyncSession, token: str) -> Principal | None:
    """The principal of a valid, unrevoked token; None for anything else."""
    token_id = token_id_of(token)
    if token_id is None:
        return None
    row = await session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.token_hash, hash_token(token)):
        return None
    return Principal(owner=row.owner, admin=row.admin, token_id=row.id)


async def token_is_active(session: AsyncSession, token_id: str) -> bool:
    """Whether the token with this id exists and is not revoked (a stream ticket's check)."""
    row = await session.get(ApiToken, token_id)
    return row is not None and row.revoked_at is None


# The API's reads (app.db.session.read_connection): one statement, one round trip.
_PRINCIPAL_SQL = (
    "SELECT token_hash, owner, admin FROM api_tokens WHERE id = %s AND revoked_at IS NULL"
)


async def read_principal(conn: psycopg.AsyncConnection[Any], token: str) -> Principal | None:
    """As `authenticate`, in one statement on an autocommit connection."""
    token_id = token_id_of(token)
    if token_id is None:
        return None
    row = await (await conn.execute(_PRINCIPAL_SQL, (token_id,))).fetchone()
    if row is None or not hmac.compare_digest(row[0], hash_token(token)):
        return None
    return Principal(owner=row[1], admin=row[2], token_id=token_id)


async def read_token_is_active(conn: psycopg.AsyncConnection[Any], token_id: str) -> bool:
    """As `token_is_active`, in one statement on an autocommit connection."""
    sql = "SELECT 1 FROM api_tokens WHERE id = %s AND revoked_at IS NULL"
    return await (await conn.execute(sql, (token_id,))).fetchone() is not None


async def list_tokens(session: AsyncSession, *, include_revoked: bool = True) -> list[ApiToken]:
    stmt = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
    if not include_revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None))
    return list((await session.execute(stmt)).scalars())


async def find_token(session: AsyncSession, id_or_prefix: str) -> ApiToken:
    """The one token whose id starts with `id_or_prefix` (`cer_` optional; a full token works)."""
    handle = id_or_prefix.strip()
    full_id = token_id_of(handle)
    handle = full_id or handle.removeprefix(TOKEN_PREFIX)
    if not handle or any(c not in "0123456789abcdef" for c in handle):
        raise TokenNotFound(f"{id_or_prefix!r} is not a token id")
    stmt = select(ApiToken).where(ApiToken.id.startswith(handle, autoescape=True)).limit(2)
    rows = list((await session.execute(stmt)).scalars())
    if len(rows) != 1:
        reason = "no token" if not rows else "more than one token"
        raise TokenNotFound(f"{reason} matches {id_or_prefix!r}")
    return rows[0]


async def revoke_token(session: AsyncSession, id_or_prefix: str) -> ApiToken:
    """Revoke a token (idempotent: the first revocation time is kept)."""
    row = await find_token(session, id_or_prefix)
    await session.execute(
        update(ApiToken)
        .where(ApiToken.id == row.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=func.clock_timestamp())
    )
    await session.refresh(row)
    return row
