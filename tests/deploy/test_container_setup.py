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
    assert services["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["worker"]["stop_grace_period"]  # SIGTERM drains the current run


def test_api_and_worker_containers_share_nothing_but_the_database_url() -> None:
    """Runs, queue, datasets and models live in Postgres: no shared volume, no other setting;
    each container has its own data dir (the image's /data)."""
    compose: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("migrate", "api", "worker"):
        assert "volumes" not in services[name], f"{name} mounts a volume"
        assert set(services[name]["environment"]) == {"DATABASE_URL"}, name
    assert set(compose.get("volumes") or {}) == {"pgdata"}  # Postgres' own, nobody else's
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "CEREBROS_DATA_DIR=/data" in dockerfile
    assert "chown -R cerebros /data" in dockerfile  # writable by the image's user


def _seconds(duration: str) -> float:
    """A compose duration such as `10m`, `90s` or `1m30s`."""
    total, number = 0.0, ""
    for char in duration:
        if char.isdigit() or char == ".":
            number += char
        else:
            total += float(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
    return total + (float(number) if number else 0.0)


def test_worker_containers_run_several_worker_processes_and_drain_before_sigkill() -> None:
    """N containers of a supervisor each; its own stop timeout ends before Docker's SIGKILL."""
    worker = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["worker"]
    command = [str(part) for part in worker["command"]]
    assert command[:2] == ["cerebros", "worker"]
    processes = command[command.index("--processes") + 1]
    assert processes == "${CEREBROS_WORKER_PROCESSES:-2}"  # compose fills it in
    assert worker["deploy"]["replicas"] >= 2
    stop_timeout = float(command[command.index("--stop-timeout") + 1])
    assert 0 < stop_timeout < _seconds(worker["stop_grace_period"])
