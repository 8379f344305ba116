"""A database made before procrastinate was pinned upgrades to exactly a fresh one's schema.

Revision 0001 used to install the ``schema.sql`` of whichever procrastinate 3.x was
installed. Such a database is rebuilt here in each state it can be in (the queue schema of
3.1.0, 3.2.x, 3.3.0 and 3.4.0 to 3.10.0, and the states between a release's pre and post
files), stamped 0001, given our own tables by revisions 0002-0005 as the old code did, then
upgraded to head: its schema (catalog, see schema_catalog.py) and ledger must equal a fresh
database's. The release states are replays of procrastinate's files up to that release's
last one: the ``schema.sql`` of 3.0.1, 3.0.2, 3.1.0, 3.2.0, 3.3.0, 3.4.0 and 3.9.0 (from
procrastinate's git tags) gave the same catalog as that replay on Postgres 15. The newest is
also taken verbatim: procrastinate 3.10.0's ``schema.sql``, which is what the old revision
0001 installed with the pinned version.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from alembic import command
from procrastinate.schema import SchemaManager

from app.db.migrate import alembic_config, downgrade, upgrade
from app.db.queue_schema import (
    ADOPTION_MARKERS,
    BASELINE_LAST,
    LEDGER,
    UnknownQueueSchema,
    migration_names,
    migration_sql,
)
from tests.db.schema_catalog import Catalog, catalog, differences
from tests.support.postgres import create_database, drop_database

SCHEMA_SQL = "schema.sql"
#: Every state an old database's queue schema can be in, from the baseline on.
OLD_STATES = [name for name, _ in ADOPTION_MARKERS if name >= BASELINE_LAST] + [SCHEMA_SQL]


@dataclass(frozen=True)
class Migrated:
    schema: Catalog
    ledger: set[str]


def queue_only(schema: Catalog) -> Catalog:
    """The queue's objects: procrastinate's and the ledger's (not our nas_* views over them)."""
    return {
        kind: {
            row
            for row in rows
            if ("procrastinate" in str(row) or LEDGER in str(row))
            and not str(row).startswith("('nas_")
        }
        for kind, rows in schema.items()
    }


def ledger(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute(f"SELECT name FROM {LEDGER}")}


def install_old_queue_schema(url: str, state: str) -> None:
    """procrastinate's schema as the old revision 0001 left it, for one state."""
    with psycopg.connect(url, autocommit=True) as conn:
        if state == SCHEMA_SQL:
            conn.execute(SchemaManager.get_schema())
            return
        for name in migration_names():
            if name <= state:
                with conn.transaction():
                    conn.execute(migration_sql(name))


@pytest.fixture
def database(admin_url: str) -> Iterator[str]:
    url = create_database(admin_url, prefix="cerebros_queue")
    try:
        yield url
    finally:
        drop_database(admin_url, url)


@pytest.fixture(scope="module")
def fresh(admin_url: str) -> Iterator[Migrated]:
    """A database migrated from empty to head."""
    url = create_database(admin_url, prefix="cerebros_queue_fresh")
    try:
        upgrade(url)
        yield Migrated(catalog(url), ledger(url))
    finally:
        drop_database(admin_url, url)


def test_fresh_database_records_every_procrastinate_file(fresh: Migrated) -> None:
    assert fresh.ledger == set(migration_names())


@pytest.mark.parametrize("state", OLD_STATES)
def test_old_database_upgrades_to_the_fresh_schema(
    database: str, fresh: Migrated, state: str
) -> None:
    install_old_queue_schema(database, state)
    command.stamp(alembic_config(database), "0001")
    upgrade(database, "0005")  # our own tables, exactly as before the pin

    upgrade(database)

    assert differences(catalog(database), fresh.schema) == {}
    assert ledger(database) == fresh.ledger


def test_downgrade_keeps_the_queue_schema_and_upgrade_skips_it(
    database: str, fresh: Migrated
) -> None:
    upgrade(database)
    downgrade(database, "0005")  # below the ledger's revision and every procrastinate one

    # Nothing of the queue's schema is undone (our own later tables are, as they should be).
    assert differences(queue_only(catalog(database)), queue_only(fresh.schema)) == {}
    assert ledger(database) == fresh.ledger
    upgrade(database)  # a file applied twice would fail (CREATE TYPE ... already exists)
    assert differences(catalog(database), fresh.schema) == {}


def test_queue_schema_older_than_the_baseline_is_refused(database: str) -> None:
    install_old_queue_schema(database, "03.00.00_50_post_cancel_notification.sql")
    command.stamp(alembic_config(database), "0005")

    with pytest.raises(UnknownQueueSchema, match=r"not one a procrastinate 3\.x release"):
        upgrade(database)
