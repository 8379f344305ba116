"""Readiness of an API process: database reachable, migrations at head, event hub listening.

Liveness needs none of this (the process answers); readiness is what a load balancer or an
orchestrator asks before sending traffic. Workers are not part of it: an API without live
workers still accepts runs (they queue), so `workers_health` is a separate question.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass

from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.migrate import migrations_dir
from app.observability import queries
from app.observability.queries import WorkerHeartbeat


@dataclass(frozen=True)
class Check:
    """One readiness check: `ok` None when it could not run (an earlier check failed)."""

    name: str
    ok: bool | None
    detail: str


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> list[str]:
        return [check.name for check in self.checks if check.ok is False]


@functools.cache
def migration_heads() -> frozenset[str]:
    """The head revisions of the migrations shipped with this code (read once per process)."""
    return frozenset(ScriptDirectory(str(migrations_dir())).get_heads())


async def readiness(
    sessions: async_sessionmaker[AsyncSession],
    *,
    hub_connected: bool,
    timeout_s: float = queries.DEFAULT_TIMEOUT_S,
    heads: Callable[[], frozenset[str]] = migration_heads,
) -> Readiness:
    """Run the checks: `database`, `migrations` (needs the database), `event_hub`."""
    try:
        revisions = await queries.database_revisions(sessions, timeout_s=timeout_s)
    except Exception as exc:  # unreachable, refused, too slow: all the same to a probe
        reason = f"no answer within {timeout_s:g}s" if isinstance(exc, TimeoutError) else exc
        database = Check("database", False, f"unreachable: {reason}"[:300])
        migrations = Check("migrations", None, "not checked: the database is unreachable")
    else:
        database = Check("database", True, "reachable")
        expected = await asyncio.to_thread(heads)  # reads the scripts once, then cached
        if revisions == expected:
            migrations = Check("migrations", True, f"at head {_names(expected)}")
        else:
            at = _names(revisions) if revisions else "no revision (never migrated)"
            migrations = Check(
                "migrations", False, f"database at {at}, this code expects {_names(expected)}"
            )
    hub = Check(
        "event_hub",
        hub_connected,
        "LISTEN connection up" if hub_connected else "LISTEN connection down (reconnecting)",
    )
    return Readiness((database, migrations, hub))


def _names(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions))


@dataclass(frozen=True)
class WorkersHealth:
    """Registered workers and how many of them are live (heartbeat within `stalled_after_s`)."""

    workers: list[WorkerHeartbeat]
    stalled_after_s: float

    def is_live(self, worker: WorkerHeartbeat) -> bool:
        return worker.seconds_since_heartbeat < self.stalled_after_s

    @property
    def live(self) -> int:
        return sum(1 for worker in self.workers if self.is_live(worker))


async def workers_health(
    sessions: async_sessionmaker[AsyncSession],
    *,
    stalled_after_s: float,
    timeout_s: float = queries.DEFAULT_TIMEOUT_S,
) -> WorkersHealth:
    """Raises what the database raises (the caller answers 503)."""
    beats = await queries.worker_heartbeats(sessions, timeout_s=timeout_s)
    return WorkersHealth(beats, stalled_after_s)
