"""procrastinate's job-queue schema, versioned as Alembic revisions.

The queue's tables live in our database (a run and its job are written in one transaction),
so Alembic migrates them with ours. procrastinate ships each schema change as a numbered SQL
file (``procrastinate/sql/migrations/*.sql``); as its own Django contrib does, every file is
applied once, in name order, read from the installed package (pinned exactly in
pyproject.toml):

* revision 0001 is the baseline, procrastinate 3.1.0's schema: every file up to
  `BASELINE_LAST`, replayed. 3.1.0 and not 3.0.0 because revision 0002's ``nas_run_jobs``
  view reads ``procrastinate_jobs.worker_id``, which 3.1.0 added: no database of ours ever
  had an older queue schema.
* each later file is one revision, ``migrations/versions/NNNN_procrastinate_<file>.py``,
  written by ``scripts/add_procrastinate_migrations.py`` when procrastinate is upgraded.

The ledger, ``queue_schema_migrations``, names the files a database has. Before the pin,
revision 0001 installed the ``schema.sql`` of whichever procrastinate 3.x was installed, so
a database created then may already hold later files' changes. Revision 0006 creates the
ledger and fills it once by inspecting the schema (`ADOPTION_MARKERS`); every procrastinate
revision then applies its file only if the ledger lacks it. procrastinate ships no reverse
SQL, so those revisions do not undo on downgrade: the ledger keeps them recorded and a later
upgrade skips them. Revision 0001's downgrade drops the whole queue schema, ledger included.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg
from alembic import op

from app.errors import CerebrosError

SQL_PACKAGE = "procrastinate.sql.migrations"
#: The last file of the baseline schema (revision 0001): procrastinate 3.1.0.
BASELINE_LAST = "03.01.00_50_post_add_heartbeat.sql"
LEDGER = "queue_schema_migrations"

#: What each file from 03.01.00 to procrastinate 3.10.0 (the newest the unpinned revision
#: 0001 could install) leaves in a database: a SQL condition true once it was applied. Only
#: revision 0006 uses them, once per database; files added later need none.
ADOPTION_MARKERS: tuple[tuple[str, str], ...] = (
    ("03.01.00_01_pre_add_heartbeat.sql", "to_regclass('procrastinate_workers') IS NOT NULL"),
    (
        "03.01.00_50_post_add_heartbeat.sql",
        "to_regprocedure('procrastinate_fetch_job_v1(character varying[])') IS NULL",
    ),
    (
        "03.02.00_01_pre_batch_defer_jobs.sql",
        "to_regtype('procrastinate_job_to_defer_v1') IS NOT NULL",
    ),
    (
        "03.02.00_50_post_batch_defer_jobs.sql",
        "NOT EXISTS (SELECT FROM pg_proc WHERE proname = 'procrastinate_defer_job_v1'"
        " AND pronamespace = current_schema()::regnamespace)",
    ),
    (
        "03.03.00_01_pre_priority_lock_fetch_job.sql",
        "EXISTS (SELECT FROM pg_proc WHERE proname = 'procrastinate_fetch_job_v2'"
        " AND pronamespace = current_schema()::regnamespace"
        " AND prosrc LIKE '%other_jobs.priority > jobs.priority%')",
    ),
    (
        "03.04.00_01_pre_add_retry_failed_job_procedure.sql",
        "'retried' = ANY (enum_range(NULL::procrastinate_job_event_type)::text[])",
    ),
    (
        "03.04.00_50_post_add_retry_failed_job_procedure.sql",
        "EXISTS (SELECT FROM pg_proc"
        " WHERE proname = 'procrastinate_trigger_function_status_events_update_v1'"
        " AND pronamespace = current_schema()::regnamespace AND prosrc LIKE '%''retried''%')",
    ),
)

# Everything procrastinate owns is named procrastinate_*: dropped by pattern, so a newer
# procrastinate with more tables, functions or types still downgrades cleanly.
DROP_QUEUE_SCHEMA = f"""
DROP TABLE IF EXISTS {LEDGER};
DO $$
DECLARE obj record;
BEGIN
    FOR obj IN
        SELECT c.oid::regclass AS name FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
          AND c.relname LIKE 'procrastinate\\_%'
    LOOP
        EXECUTE 'DROP TABLE IF EXISTS ' || obj.name || ' CASCADE';
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure AS name FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
          AND p.proname LIKE 'procrastinate\\_%'
    LOOP
        EXECUTE 'DROP FUNCTION IF EXISTS ' || obj.name || ' CASCADE';
    END LOOP;
    FOR obj IN
        SELECT t.oid::regtype AS name FROM pg_type t LEFT JOIN pg_class r ON r.oid = t.typrelid
        WHERE t.typnamespace = current_schema()::regnamespace
          AND t.typname LIKE 'procrastinate\\_%'
          AND (t.typtype = 'e' OR (t.typtype = 'c' AND r.relkind = 'c'))
    LOOP
        EXECUTE 'DROP TYPE IF EXISTS ' || obj.name || ' CASCADE';
    END LOOP;
END $$;
"""


class UnknownQueueSchema(CerebrosError):
    """The database's queue schema matches no procrastinate release this project knows."""


def migration_names() -> list[str]:
    """Procrastinate's schema migration files, in the order they apply (their names sort)."""
    files = resources.files(SQL_PACKAGE).iterdir()
    return sorted(f.name for f in files if f.name.endswith(".sql"))


def baseline_names() -> list[str]:
    """The files replayed by revision 0001."""
    return [name for name in migration_names() if name <= BASELINE_LAST]


def migration_sql(name: str) -> str:
    """The text of one procrastinate migration file, as the installed package ships it."""
    return resources.files(SQL_PACKAGE).joinpath(name).read_text(encoding="utf-8")


def driver_connection() -> psycopg.Connection[Any]:
    """The psycopg connection under the running migration.

    A script runs verbatim there: no bind-parameter parsing of the ``:`` and ``%`` in
    procrastinate's SQL, and a multi-statement file in one call.
    """
    conn = op.get_bind().connection.driver_connection
    assert isinstance(conn, psycopg.Connection), conn
    return conn


def apply_baseline() -> None:
    """Revision 0001: replay the baseline files, each in a transaction of its own.

    One transaction per file, as procrastinate's Django migrations run: a file that adds an
    enum value (02.06.00_01) precedes one that uses it, and Postgres only lets a transaction
    use a value committed before it began.
    """
    with op.get_context().autocommit_block():
        conn = driver_connection()
        for name in baseline_names():
            with conn.transaction():
                conn.execute(migration_sql(name))


def drop_queue_schema() -> None:
    """Revision 0001's downgrade: every procrastinate object, and the ledger."""
    driver_connection().execute(DROP_QUEUE_SCHEMA)


def adopt_queue_schema() -> list[str]:
    """Revision 0006: create the ledger and, if it is empty, record the files the schema has.

    Returns the files recorded now (none when the ledger already had rows).

    Raises:
        UnknownQueueSchema: see `_files_found`.
    """
    conn = driver_connection()
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {LEDGER} ("
        "name text PRIMARY KEY, recorded_at timestamptz NOT NULL DEFAULT clock_timestamp())"
    )
    if conn.execute(f"SELECT EXISTS (SELECT FROM {LEDGER})").fetchone() == (True,):
        return []
    names = baseline_names() + _files_found(conn)
    _record(conn, names)
    return names


def apply_procrastinate_migration(name: str) -> bool:
    """A procrastinate revision: apply file ``name`` unless the ledger has it, then record it.

    Returns whether the file was applied now.
    """
    conn = driver_connection()
    row = conn.execute(f"SELECT EXISTS (SELECT FROM {LEDGER} WHERE name = %s)", (name,))
    if row.fetchone() == (True,):
        return False
    conn.execute(migration_sql(name))
    _record(conn, [name])
    return True


def _files_found(conn: psycopg.Connection[Any]) -> list[str]:
    """The files after the baseline whose changes the queue schema has (`ADOPTION_MARKERS`).

    Raises:
        UnknownQueueSchema: the schema lacks part of the baseline, or has a later file's
            changes without an earlier one's: no procrastinate release from 3.1.0 to 3.10.0
            left it so.
    """
    conditions = ", ".join(f"({condition})" for _, condition in ADOPTION_MARKERS)
    row = conn.execute(f"SELECT {conditions}").fetchone()
    assert row is not None
    present = [bool(value) for value in row]
    markers = [name for name, _ in ADOPTION_MARKERS]
    count = present.index(False) if False in present else len(present)
    if count <= markers.index(BASELINE_LAST) or any(present[count:]):
        found = [name for name, ok in zip(markers, present, strict=True) if ok]
        raise UnknownQueueSchema(
            "the procrastinate schema of this database is not one a procrastinate 3.x "
            f"release (3.1.0 to 3.10.0) installs; changes found: {found or 'none'}"
        )
    return [name for name in markers[:count] if name > BASELINE_LAST]


def _record(conn: psycopg.Connection[Any], names: list[str]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {LEDGER} (name) VALUES (%s) ON CONFLICT DO NOTHING",
            [(name,) for name in names],
        )
