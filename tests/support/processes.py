"""Start the real service processes (API under uvicorn, workers) for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    env = os.environ.copy()
    # Auth off unless a test turns it on (CEREBROS_AUTH="true"): these tests predate tokens.
    env.update(
        {"DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1", "CEREBROS_AUTH": "false", **extra}
    )
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextmanager
def api_server(env: dict[str, str], log_dir: Path) -> Iterator[str]:
    port = free_port()
    proc = start(["serve", "--port", str(port)], env, log_dir / "api.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health")
        yield base
    finally:
        stop(proc)


@contextmanager
def worker_process(
    env: dict[str, str], log_dir: Path, name: str = "worker"
) -> Iterator[subprocess.Popen[bytes]]:
    # One process, as these tests count on (`worker` alone runs one per core).
    proc = start(["worker", "--processes", "1"], env, log_dir / f"{name}.log")
    try:
        yield proc
    finally:
        stop(proc)


def wait_final(base: str, run_id: str, timeout: float = 180, **kw: object) -> dict[str, object]:
    """Poll GET /runs/{id} until the run is final; return it."""
    deadline = time.monotonic() + timeout
    run: dict[str, object] = {}
    while time.monotonic() < deadline:
        run = httpx.get(f"{base}/runs/{run_id}", timeout=10, **kw).json()  # type: ignore[arg-type]
        if run.get("status") in {"succeeded", "failed", "cancelled"}:
            return run
        time.sleep(0.3)
    raise TimeoutError(f"run {run_id} still {run.get('status')} after {timeout}s")
