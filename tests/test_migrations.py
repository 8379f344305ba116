"""Alembic upgrade/downgrade on a real, empty database."""

from __future__ import annotations

import psycopg

from app.db.migrate import downgrade, upgrade
from tests.support.postgres import create_database, drop_database

APP_RELATIONS = {"runs", "trials", "run_events", "nas_run_jobs", "procrastinate_jobs"}


def _relations(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v')"
        ).fetchall()
    return {r[0] for r in rows}


def _functions(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_upgrade_then_downgrade_leaves_nothing(admin_url: str) -> None:
    url = create_database(admin_url, prefix="cerebros_migr")
    try:
        upgrade(url)
        assert _relations(url) >= APP_RELATIONS
        assert "procrastinate_defer_jobs_v1" in _functions(url)

        downgrade(url)
        assert _relations(url) == {"alembic_version"}
        assert _functions(url) == set()

        upgrade(url)  # and back again: the downgrade left nothing that blocks a re-upgrade
        assert _relations(url) >= APP_RELATIONS
    finally:
        drop_database(admin_url, url)
