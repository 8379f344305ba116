"""A short-lived, bounded cache of checked tokens, so a request needs no database read to auth.

An API process remembers, for `ttl_s` seconds, the principal a valid token stood for. Its
entry is keyed by the token's sha256 (the token itself is never kept), dropped once
`ttl_s` has passed since the check, and then the token is checked against the database
again: a token revoked (`cerebros token revoke`) is refused by every API process at most
`ttl_s` seconds after the revocation committed. Refusals are not cached (an unknown or
revoked token is read every time, as before), so a caller cannot fill the cache with
junk; at most `max_entries` tokens are kept, the oldest checked evicted first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from app.auth.tokens import Principal, hash_token

Clock = Callable[[], float]


class TokenCache:
    """Principals of recently checked tokens, each trusted for `ttl_s` seconds.

    Args:
        ttl_s: How long a checked token is trusted; 0 turns the cache off.
        max_entries: Most tokens remembered at once.
        clock: Monotonic seconds (tests move it by hand).
    """

    def __init__(self, ttl_s: float, *, max_entries: int = 10_000, clock: Clock = time.monotonic):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def principal(
        self, token: str, check: Callable[[str], Awaitable[Principal | None]]
    ) -> Principal | None:
        """The principal of `token`: remembered if checked less than `ttl_s` ago, else `check`ed.

        Args:
            token: The bearer token as sent.
            check: Reads the token's principal from the database (None: invalid or revoked).
        """
        if self.ttl_s <= 0:
            return await check(token)
        key = hash_token(token)
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None:
            expires, known = entry
            if now < expires:
                return known
            del self._entries[key]
        checked = await check(token)
        if checked is not None:
            # Timed from before the read: the entry never outlives a revocation committed
            # while the read was in flight by more than ttl_s.
            self._entries[key] = (now + self.ttl_s, checked)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return checked

    def clear(self) -> None:
        self._entries.clear()
