"""`cerebros up` then `cerebros down`, as real processes on an embedded Postgres of their own:
down leaves no process and no listening socket; up keeps one admin token in an 0600 file."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from app.db.embedded import locate_cluster
from tests.cli.helpers import cerebros, embedded_env, remove_embedded
from tests.support.processes import free_port, start, stop, wait_http

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir of the test's own; its embedded server is stopped and removed after."""
    path = tmp_path / "data"
    yield path
    remove_embedded(path)


class Up:
    """One `cerebros up` process and what it reports."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.port = free_port()
        self.log = log
        self.proc = start(["up", "--port", str(self.port), *args], env, log)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_http(f"{self.base}/health", timeout=120)
        self.record = self._record(Path(env["CEREBROS_DATA_DIR"]))

    def _record(self, data_dir: Path) -> dict[str, dict[str, float]]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                record: dict[str, dict[str, float]] = json.loads((data_dir / "up.json").read_text())
                return record
            except (OSError, ValueError):
                time.sleep(0.2)
        raise AssertionError("no up.json")

    def output(self) -> str:
        return self.log.read_text()

    def processes(self) -> list[psutil.Process]:
        """`up`, its worker and their children (a supervisor's worker processes)."""
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]


def export_token(output: str) -> str:
    """The token the printed `export CEREBROS_TOKEN=...` line sets, run by bash."""
    line = next(li.strip() for li in output.splitlines() if "export CEREBROS_TOKEN=" in li)
    done = subprocess.run(
        ["bash", "-c", f'{line}; printf %s "$CEREBROS_TOKEN"'], capture_output=True, text=True
    )
    return done.stdout


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_down_stops_api_worker_and_embedded_postgres(data_dir: Path, tmp_path: Path) -> None:
    env = embedded_env(data_dir)
    up = Up(env, tmp_path / "up.log", "--processes", "2")
    try:
        deadline = time.monotonic() + 60
        while len(up.processes()) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        ours = up.processes()
        assert len(ours) == 4, "up, the worker supervisor and its two worker processes"
        pgdata = locate_cluster(data_dir).pgdata
        postmaster = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
        ours += [postmaster, *postmaster.children(recursive=True)]
        socket_file = pgdata / ".s.PGSQL.5432"
        assert socket_file.exists() and listening(up.port)
        output = up.output()
        assert "database: postgresql://postgres@/postgres?host=" in output
        assert "***" not in output  # no password to mask

        done = cerebros(env, "down")
    finally:
        stop(up.proc)  # only if down failed
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"stopped the API at {up.base} and its worker" in done.stdout
    assert f"stopped the embedded PostgreSQL in {pgdata}" in done.stdout
    up.proc.wait(timeout=10)
    gone = psutil.wait_procs(ours, timeout=10)[1]
    assert not gone, f"still running: {gone}"
    assert not listening(up.port)
    assert not socket_file.exists()
    assert not (data_dir / "up.json").exists()
    assert cerebros(env, "down").stdout.strip() == "nothing was running"


def test_up_keeps_one_admin_token_in_a_private_file(data_dir: Path, tmp_path: Path) -> None:
    env = embedded_env(data_dir)
    token_file = data_dir / "admin-token"

    first = Up(env, tmp_path / "up1.log")
    try:
        token = export_token(first.output())
        assert token.startswith("cer_") and token not in first.output()  # never printed
        assert token_file.read_text().strip() == token
        assert token_file.stat().st_mode & 0o777 == 0o600
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{first.base}/runs", headers=auth, timeout=10).status_code == 200
    finally:
        first.proc.send_signal(signal.SIGTERM)  # as Ctrl+C would: up stops its worker
        first.proc.wait(timeout=60)
    assert not (data_dir / "up.json").exists()

    second = Up(env, tmp_path / "up2.log")
    try:
        assert export_token(second.output()) == token
        assert "(reused;" in second.output()
        revoked = cerebros(env, "token", "revoke", token.split("_")[1])
        assert revoked.returncode == 0, revoked.stderr
    finally:
        assert cerebros(env, "down").returncode == 0

    third = Up(env, tmp_path / "up3.log")
    try:
        renewed = export_token(third.output())
        assert renewed != token and "(new;" in third.output()
        assert token_file.read_text().strip() == renewed
        assert token_file.stat().st_mode & 0o777 == 0o600
        listed = cerebros(env, "token", "list", "--active")
        assert listed.stdout.count("local") == 1  # one valid admin token, not one per up
    finally:
        assert cerebros(env, "down").returncode == 0
