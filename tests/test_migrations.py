"""Alembic upgrade/downgrade on a real, empty database, and the shape of the revision chain."""

from __future__ import annotations

import itertools

import psycopg
from alembic.script import ScriptDirectory

from app.db.migrate import downgrade, migrations_dir, upgrade
from tests.support.postgres import create_database, drop_database

APP_RELATIONS = {"runs", "trials", "run_events", "nas_run_jobs", "procrastinate_jobs"}
#: Ids that existing databases have stored in alembic_version: never renumbered.
RELEASED = ["0001", "0002", "0003", "0004", "0005"]


def _names(url: str, query: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute(query)}


def _relations(url: str) -> set[str]:
    return _names(
        url,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v')",
    )


def _functions(url: str) -> set[str]:
    return _names(
        url,
        "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'public'",
    )


def _types(url: str) -> set[str]:
    """Enums and standalone composite types (a table's row type goes with the table)."""
    return _names(
        url,
        "SELECT t.typname FROM pg_type t LEFT JOIN pg_class r ON r.oid = t.typrelid "
        "WHERE t.typnamespace = 'public'::regnamespace "
        "AND (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND r.relkind = 'c'))",
    )


def test_upgrade_then_downgrade_leaves_nothing(admin_url: str) -> None:
    url = create_database(admin_url, prefix="cerebros_migr")
    try:
        upgrade(url)
        assert _relations(url) >= APP_RELATIONS | {"queue_schema_migrations"}
        assert "procrastinate_defer_jobs_v1" in _functions(url)
        assert "procrastinate_job_to_defer_v1" in _types(url)

        downgrade(url)
        assert _relations(url) == {"alembic_version"}
        assert _functions(url) == set()
        assert _types(url) == set()

        upgrade(url)  # and back again: the downgrade left nothing that blocks a re-upgrade
        assert _relations(url) >= APP_RELATIONS
    finally:
        drop_database(admin_url, url)


def test_history_is_one_line_that_keeps_the_released_ids() -> None:
    script = ScriptDirectory(str(migrations_dir()))
    chain = [rev.revision for rev in script.walk_revisions()][::-1]  # base first

    assert script.get_heads() == [chain[-1]]
    assert chain[: len(RELEASED)] == RELEASED
    for older, newer in itertools.pairwise(chain):
        assert script.get_revision(newer).down_revision == older
    assert chain == [f"{n:04d}" for n in range(1, len(chain) + 1)]
