"""Run `python -m app.cli` as a user would, with an environment of the test's choosing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.db.embedded import locate_cluster


def cerebros(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """No DATABASE_URL: the embedded server of `data_dir`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CEREBROS_AUTH")}
    env.update(
        CEREBROS_DATA_DIR=str(data_dir),
        CEREBROS_EMBEDDED_DATABASE="true",
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
        **extra,
    )
    return env


def remove_embedded(data_dir: Path) -> None:
    """Stop the embedded server of `data_dir` and remove a cluster moved out of it."""
    cluster = locate_cluster(data_dir)
    if cluster.running():
        cluster.stop()
    if cluster.home != data_dir:  # as root, a cluster moved out of a private tmp_path
        subprocess.run(["rm", "-rf", str(cluster.home)], check=False)
