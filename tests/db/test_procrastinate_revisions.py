"""procrastinate is pinned, each schema file it ships has a revision, adding them is mechanical."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from alembic.script import ScriptDirectory
from packaging.requirements import Requirement

from app.db.migrate import migrations_dir
from app.db.queue_schema import baseline_names, migration_names

REPO = Path(__file__).resolve().parents[2]


def _load_script() -> ModuleType:
    path = REPO / "scripts" / "add_procrastinate_migrations.py"
    spec = importlib.util.spec_from_file_location("add_procrastinate_migrations", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_procrastinate_is_pinned_to_the_installed_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = [Requirement(d) for d in project["dependencies"] if d.startswith("procrastinate")]

    assert [str(pin.specifier) for pin in pins] == [
        f"=={importlib.metadata.version('procrastinate')}"
    ]


def test_every_procrastinate_file_applies_once_in_order() -> None:
    script = ScriptDirectory(str(migrations_dir()))
    revisions = list(script.walk_revisions())[::-1]  # base first
    applied = baseline_names() + [
        rev.module.SQL_FILE for rev in revisions if hasattr(rev.module, "SQL_FILE")
    ]

    assert applied == migration_names()


def test_script_adds_a_revision_per_new_file(tmp_path: Path) -> None:
    script = _load_script()
    migrations = tmp_path / "migrations"
    shutil.copytree(migrations_dir(), migrations, ignore=shutil.ignore_patterns("__pycache__"))
    head = ScriptDirectory(str(migrations)).get_current_head()
    assert head is not None
    new = ["03.11.00_01_pre_something.sql", "03.11.00_50_post_something.sql"]
    files = [*migration_names(), *new]
    args = ["--migrations", str(migrations)] + [f"--sql-file={name}" for name in files]

    assert script.main([*args, "--check"]) == 1
    assert script.main(args) == 0
    assert script.main([*args, "--check"]) == 0

    after = ScriptDirectory(str(migrations))
    first, second = f"{int(head) + 1:04d}", f"{int(head) + 2:04d}"
    assert after.get_heads() == [second]
    assert after.get_revision(second).down_revision == first
    assert after.get_revision(first).down_revision == head
    sql_file = after.get_revision(first).module.SQL_FILE
    assert sql_file == new[0]
    assert (
        migrations / "versions" / f"{second}_procrastinate_03_11_00_50_post_something.py"
    ).is_file()


def test_script_refuses_a_file_that_sorts_before_an_applied_one(tmp_path: Path) -> None:
    script = _load_script()
    files = [*migration_names(), "03.02.05_01_backported.sql"]

    with pytest.raises(SystemExit, match=r"03\.02\.05_01_backported\.sql"):
        script.main(
            ["--check", "--migrations", str(migrations_dir())] + [f"--sql-file={n}" for n in files]
        )
