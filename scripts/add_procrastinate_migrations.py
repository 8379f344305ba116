"""Write one Alembic revision per procrastinate schema migration file that has none yet.

After upgrading procrastinate (its exact pin in pyproject.toml, then `pip install -e .`):

    python scripts/add_procrastinate_migrations.py          # write the missing revisions
    python scripts/add_procrastinate_migrations.py --check  # exit 1 if any is missing

Each new revision applies one file of the installed procrastinate, in file-name order,
chained after the current head with the next four-digit id (app/db/queue_schema.py explains
the scheme). Commit the new files with the pin.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file from anywhere: `app` comes from this checkout

from app.db.queue_schema import BASELINE_LAST, migration_names  # noqa: E402

TEMPLATE = '''"""procrastinate schema migration {name}.

Applied as the pinned procrastinate ships it, unless the queue schema's ledger already has it
(written by scripts/add_procrastinate_migrations.py; see app/db/queue_schema.py).

Revision ID: {revision}
Revises: {down_revision}
Create Date: {date}
"""

from __future__ import annotations

from app.db.queue_schema import apply_procrastinate_migration

revision = "{revision}"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None

SQL_FILE = "{name}"


def upgrade() -> None:
    apply_procrastinate_migration(SQL_FILE)


def downgrade() -> None:
    # Forward only: procrastinate ships no reverse SQL. The ledger keeps the file recorded, so
    # upgrading again skips it; revision 0001's downgrade removes the whole queue schema.
    pass
'''


def covered_files(script: ScriptDirectory) -> set[str]:
    """The procrastinate files the chain applies: the baseline's and each revision's SQL_FILE."""
    files = {name for name in migration_names() if name <= BASELINE_LAST}
    for rev in script.walk_revisions():
        sql_file = getattr(rev.module, "SQL_FILE", None)
        if sql_file is not None:
            files.add(sql_file)
    return files


def missing_files(script: ScriptDirectory, available: list[str]) -> list[str]:
    """Files of ``available`` that no revision applies yet, in the order they must apply.

    Raises:
        SystemExit: a missing file sorts before one already applied (appending it would
            apply it out of order: decide by hand).
    """
    covered = covered_files(script)
    missing = sorted(set(available) - covered)
    last = max(covered)
    early = [name for name in missing if name < last]
    if early:
        raise SystemExit(f"{early} sort before {last}, which is already applied: add by hand")
    return missing


def write_revisions(script: ScriptDirectory, names: list[str], versions: Path) -> list[Path]:
    """One revision file per name, chained after the current head."""
    head = script.get_current_head()
    if head is None or not head.isdigit():
        raise SystemExit(f"cannot number after head {head!r}: four-digit ids expected")
    written = []
    for number, name in enumerate(names, start=int(head) + 1):
        revision = f"{number:04d}"
        slug = name.removesuffix(".sql").replace(".", "_")
        path = versions / f"{revision}_procrastinate_{slug}.py"
        path.write_text(
            TEMPLATE.format(
                name=name,
                revision=revision,
                down_revision=head,
                date=datetime.date.today().isoformat(),
            )
        )
        written.append(path)
        head = revision
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if missing")
    parser.add_argument("--migrations", type=Path, default=ROOT / "migrations")
    parser.add_argument(
        "--sql-file",
        action="append",
        default=None,
        help="take these file names instead of the installed procrastinate's (tests)",
    )
    args = parser.parse_args(argv)
    script = ScriptDirectory(str(args.migrations))
    available = args.sql_file if args.sql_file is not None else migration_names()
    missing = missing_files(script, available)
    if args.check:
        for name in missing:
            print(f"no revision applies procrastinate's {name}")
        return 1 if missing else 0
    for path in write_revisions(script, missing, args.migrations / "versions"):
        print(f"wrote {path.relative_to(args.migrations.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
