"""The API's cache of checked tokens (app/auth/cache.py): bounded in time and in size."""

from __future__ import annotations

from app.auth.cache import TokenCache
from app.auth.tokens import Principal


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Database:
    """The token check, counting its reads; `valid` is what the table says now."""

    def __init__(self) -> None:
        self.valid: dict[str, Principal] = {}
        self.reads = 0

    async def check(self, token: str) -> Principal | None:
        self.reads += 1
        return self.valid.get(token)


async def test_a_checked_token_is_trusted_for_the_ttl_then_read_again() -> None:
    clock, db = Clock(), Database()
    cache = TokenCache(5.0, clock=clock)
    db.valid["t"] = Principal(owner="alice", token_id="abc")
    assert await cache.principal("t", db.check) == Principal(owner="alice", token_id="abc")
    del db.valid["t"]  # revoked
    clock.now += 4.99
    assert await cache.principal("t", db.check) is not None and db.reads == 1
    clock.now += 0.01
    assert await cache.principal("t", db.check) is None and db.reads == 2


async def test_refusals_are_not_cached() -> None:
    clock, db = Clock(), Database()
    cache = TokenCache(5.0, clock=clock)
    for _ in range(3):
        assert await cache.principal("junk", db.check) is None
    assert db.reads == 3 and len(cache) == 0


async def test_ttl_zero_reads_every_time() -> None:
    db = Database()
    db.valid["t"] = Principal(owner="bob")
    cache = TokenCache(0.0)
    for _ in range(3):
        assert await cache.principal("t", db.check) is not None
    assert db.reads == 3 and len(cache) == 0


async def test_the_cache_keeps_at_most_max_entries_and_never_the_token() -> None:
    db = Database()
    cache = TokenCache(60.0, max_entries=2, clock=Clock())
    for name in ("a", "b", "c"):
        db.valid[name] = Principal(owner=name)
        await cache.principal(name, db.check)
    assert len(cache) == 2
    assert all(len(key) == 64 for key in cache._entries)  # sha256 hex digests, not tokens
    await cache.principal("a", db.check)  # the oldest was evicted: read again
    assert db.reads == 4
