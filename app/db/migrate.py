"""Run Alembic programmatically (used by `cerebros migrate`, `cerebros up` and the tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def migrations_dir() -> Path:
    """The Alembic script directory: the top-level `migrations` folder beside `app`.

    In a checkout that is the repository's `migrations/` (where `alembic.ini` points too); in
    an installed wheel it is `site-packages/migrations`, shipped beside `site-packages/app`.
    Found by path, not imported, so no other distribution's `migrations` package can stand
    in for it.

    Raises:
        FileNotFoundError: neither place has the scripts (a broken install).
    """
    path = Path(__file__).resolve().parents[2] / "migrations"
    if not (path / "env.py").is_file():
        raise FileNotFoundError(f"the Alembic migrations are missing: no {path / 'env.py'}")
    return path


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration for ``database_url`` that needs no `alembic.ini`."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # Alembic's config uses ConfigParser interpolation: a literal % must be doubled.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database at ``database_url`` up to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Migrate the database at ``database_url`` down to ``revision``."""
    command.downgrade(alembic_config(database_url), revision)
