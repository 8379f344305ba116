"""The wheel ships the top-level migrations/, and an installed copy migrates from it.

The wheel is built from a copy of the sources (nothing written into the checkout) and
unpacked as a site-packages folder; a child process that imports `app` from there, in a
folder without alembic.ini, migrates a new database to head.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import psycopg
from alembic.script import ScriptDirectory

from app.db.migrate import migrations_dir
from tests.support.postgres import create_database, drop_database

REPO = Path(__file__).resolve().parents[2]
SOURCES = ["pyproject.toml", "README.md", "app", "migrations"]


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, src / name)
    out = tmp_path / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-q", "-w", str(out), str(src)],
        check=True,
        timeout=300,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


def test_installed_wheel_migrates_from_its_own_migrations(tmp_path: Path, admin_url: str) -> None:
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("migrations/")}
        site = tmp_path / "site-packages"
        archive.extractall(site)
    checkout = {
        path.relative_to(REPO).as_posix()
        for path in migrations_dir().rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert shipped == checkout

    url = create_database(admin_url, prefix="cerebros_wheel")
    try:
        code = (
            "import sys; from app.db.migrate import migrations_dir, upgrade; "
            "print(migrations_dir()); upgrade(sys.argv[1])"
        )
        env = {**os.environ, "PYTHONPATH": str(site)}
        done = subprocess.run(
            [sys.executable, "-c", code, url],
            cwd=tmp_path,  # no alembic.ini here
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] == str(site / "migrations")
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert row == (ScriptDirectory(str(migrations_dir())).get_current_head(),)
    finally:
        drop_database(admin_url, url)
