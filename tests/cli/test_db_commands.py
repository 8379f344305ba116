"""`cerebros db url|psql`, and commands that start the embedded server say so."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.db.embedded import locate_cluster
from tests.cli.helpers import cerebros, embedded_env, remove_embedded


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    remove_embedded(path)


def with_url(url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url}


def test_db_url_masks_a_password_only_where_there_is_one() -> None:
    secret = cerebros(with_url("postgresql://app:s3cret@db.example:5432/nas"), "db", "url")
    assert secret.returncode == 0, secret.stderr
    assert secret.stdout.strip() == "postgresql://app:***@db.example:5432/nas"
    shown = cerebros(
        with_url("postgresql://app:s3cret@db.example:5432/nas"), "db", "url", "--show-password"
    )
    assert shown.stdout.strip() == "postgresql://app:s3cret@db.example:5432/nas"
    for url in ("postgresql://app@db.example/nas", "postgresql://app:@db.example/nas"):
        printed = cerebros(with_url(url), "db", "url").stdout.strip()
        assert printed == "postgresql://app@db.example/nas"  # nothing to mask: no ***


def test_db_url_of_the_embedded_server_does_not_start_it(data_dir: Path) -> None:
    done = cerebros(embedded_env(data_dir), "db", "url")
    assert done.returncode == 0, done.stderr
    cluster = locate_cluster(data_dir)
    assert done.stdout.strip() == f"postgresql://postgres@/postgres?host={cluster.pgdata}"
    assert "not running" in done.stderr and "cerebros up" in done.stderr
    assert not cluster.running() and not cluster.pgdata.exists()


def test_db_psql_opens_psql_on_the_database(database_url: str) -> None:
    done = cerebros(with_url(database_url), "db", "psql", "-tA", "-c", "SELECT 40 + 2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"


@pytest.mark.slow
def test_a_command_that_starts_the_embedded_server_says_so_in_one_line(data_dir: Path) -> None:
    env = embedded_env(data_dir)
    migrated = cerebros(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert cerebros(env, "db", "stop").stdout.strip() == "embedded PostgreSQL stopped"

    listed = cerebros(env, "token", "list")

    assert listed.returncode == 0, listed.stderr
    cluster = locate_cluster(data_dir)
    # As root, under pytest's 0700 tmp dir, the cluster lives elsewhere and the line says why.
    moved = "" if cluster.home == data_dir else f" (the server's user cannot reach {data_dir})"
    assert listed.stderr.splitlines() == [
        f"starting the embedded PostgreSQL in {cluster.pgdata}{moved} "
        "(it keeps running; `cerebros down` stops it)"
    ]
    assert cluster.running()
    stopped = cerebros(env, "down")
    assert stopped.stdout.strip() == f"stopped the embedded PostgreSQL in {cluster.pgdata}"
    assert not cluster.running()
