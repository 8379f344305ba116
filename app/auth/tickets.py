"""Stream tickets: short-lived, single-use stand-ins for a bearer token on SSE URLs.

A browser's `EventSource` cannot send an `Authorization` header, and a long-lived token
must never sit in a URL (access logs, browser history, proxies). So an authenticated
`POST /events/tickets` issues an opaque ticket that opens event streams only (`?ticket=`),
once, within `ttl_s` seconds, as the token's owner (admin flag included), optionally only
for one run's stream. A stream opened with it is then checked against its token like any
other: revoking the token ends it.

Tickets live in this API process's memory, as sha256 digests only: a ticket works only on
the process that issued it (fine for one API process; several behind a load balancer would
need sticky sessions or a shared store), and a restart voids the outstanding ones (the
dashboard simply asks for another).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from app.auth.tokens import Principal

TICKET_PREFIX = "cst_"
TICKET_BYTES = 32
MAX_TICKET_LENGTH = 100  # anything longer is not one of ours
DEFAULT_TTL_S = 60.0
#: Outstanding tickets one owner may hold; issuing more drops that owner's oldest, so memory
#: stays bounded however often a client asks and one owner never voids another's tickets.
MAX_OUTSTANDING_PER_OWNER = 50


@dataclass(frozen=True)
class StreamTicket:
    """What a ticket stands for: who, for which run (None: any stream they may read), until."""

    principal: Principal
    run_id: uuid.UUID | None
    expires_at: float

    def opens(self, run_id: uuid.UUID | None, now: float) -> bool:
        """Whether it may open the stream of `run_id` (None: the global stream) at `now`."""
        return now < self.expires_at and (self.run_id is None or self.run_id == run_id)


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode("utf-8", "surrogatepass")).hexdigest()


class StreamTickets:
    """The tickets this process issued and nobody used yet (digests only)."""

    def __init__(
        self,
        ttl_s: float = DEFAULT_TTL_S,
        *,
        max_per_owner: int = MAX_OUTSTANDING_PER_OWNER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_per_owner = max_per_owner
        self.clock = clock
        self._tickets: dict[str, StreamTicket] = {}
        self._by_owner: dict[str, OrderedDict[str, None]] = {}

    def __len__(self) -> int:
        return len(self._tickets)

    def issue(self, principal: Principal, run_id: uuid.UUID | None = None) -> str:
        """A fresh ticket for `principal` (shown once: only its digest is kept)."""
        now = self.clock()
        self._drop_expired(now)
        ticket = f"{TICKET_PREFIX}{secrets.token_urlsafe(TICKET_BYTES)}"
        digest = _digest(ticket)
        self._tickets[digest] = StreamTicket(principal, run_id, now + self.ttl_s)
        owned = self._by_owner.setdefault(principal.owner, OrderedDict())
        owned[digest] = None
        while len(owned) > self.max_per_owner:
            oldest, _ = owned.popitem(last=False)
            self._tickets.pop(oldest, None)
        return ticket

    def redeem(self, ticket: str, run_id: uuid.UUID | None) -> Principal | None:
        """The principal of a valid ticket for this stream, else None; used up either way."""
        if len(ticket) > MAX_TICKET_LENGTH or not ticket.startswith(TICKET_PREFIX):
            return None
        # Looked up by digest: lookup timing says nothing about the ticket itself.
        digest = _digest(ticket)
        if digest not in self._tickets:
            return None
        entry = self._forget(digest)
        return entry.principal if entry.opens(run_id, self.clock()) else None

    def _forget(self, digest: str) -> StreamTicket:
        entry = self._tickets.pop(digest)
        owned = self._by_owner.get(entry.principal.owner)
        if owned is not None:
            owned.pop(digest, None)
            if not owned:
                del self._by_owner[entry.principal.owner]
        return entry

    def _drop_expired(self, now: float) -> None:
        for digest in [d for d, t in self._tickets.items() if t.expires_at <= now]:
            self._forget(digest)
