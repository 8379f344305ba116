"""What the Docker image and compose file promise, checked without a Docker engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_without_database_url_a_container_fails_at_once_naming_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(CEREBROS_EMBEDDED_DATABASE="false", CEREBROS_DATA_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode != 0
    assert "DATABASE_URL" in done.stdout + done.stderr
    assert not (tmp_path / "pgdata").exists(), "an embedded Postgres was started anyway"


def test_the_image_turns_the_embedded_database_off() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "CEREBROS_EMBEDDED_DATABASE=false" in dockerfile
    assert "install_torch.sh" in dockerfile  # the CPU wheel, never a CUDA build


def test_compose_runs_postgres_migrations_api_and_workers_with_health_checks() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "migrate", "api", "worker"} <= services.keys()
    for name in ("postgres", "api", "worker"):
        assert "healthcheck" in services[name], name
    for name in ("migrate", "api", "worker"):
        service = services[name]
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://"), name
        # Model download and predict on the API read what the workers wrote.
        assert "artifacts:/data/artifacts" in service["volumes"], name
    assert services["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["worker"]["stop_grace_period"]  # SIGTERM drains the current run
