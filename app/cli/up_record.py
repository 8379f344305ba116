"""What `cerebros up` started, kept in `DATA_DIR/up.json` so `cerebros down` can stop it.

Each process is recorded with its start time: a pid reused by another program after a
crash or reboot is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

UP_FILE = "up.json"


@dataclass(frozen=True)
class Started:
    """One process: its pid and its start time (psutil's create_time)."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> Started:
        return cls(pid, psutil.Process(pid).create_time())

    def process(self) -> psutil.Process | None:
        """The process if it still runs (and is the same one), else None."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.create_time) > 0.01:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return process


@dataclass(frozen=True)
class UpRecord:
    """The `up` process (API in it) and the worker it launched."""

    up: Started
    worker: Started | None
    api: str

    def write(self, data_dir: Path) -> None:
        path = data_dir / UP_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)

    @classmethod
    def read(cls, data_dir: Path) -> UpRecord | None:
        try:
            raw = json.loads((data_dir / UP_FILE).read_text())
            worker = raw.get("worker")
            return cls(Started(**raw["up"]), Started(**worker) if worker else None, raw["api"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def alive(self) -> list[psutil.Process]:
        return [p for p in (self.up.process(), self.worker and self.worker.process()) if p]

    def worker_children(self) -> list[psutil.Process]:
        """The processes the worker started (a supervisor's worker processes), if it runs."""
        worker = self.worker and self.worker.process()
        if not worker:
            return []
        try:
            return list(worker.children(recursive=True))
        except psutil.Error:
            return []

    @staticmethod
    def remove(data_dir: Path, owner_pid: int | None = None) -> None:
        """Remove the record (only if `owner_pid` wrote it, when given)."""
        record = UpRecord.read(data_dir)
        if owner_pid is None or (record is not None and record.up.pid == owner_pid):
            (data_dir / UP_FILE).unlink(missing_ok=True)


def _gone(process: psutil.Process) -> bool:
    # A zombie has exited; only its parent (a shell, a test) can reap it, not us.
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _wait(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has exited; those still running after `timeout`."""
    deadline = time.monotonic() + timeout
    left = [p for p in processes if not _gone(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if not _gone(p)]
    return left


def stop_processes(
    processes: list[psutil.Process],
    timeout: float = 60,
    descendants: list[psutil.Process] | None = None,
) -> None:
    """SIGTERM each (the API ends its requests, the worker its run), SIGKILL after `timeout`.

    `descendants` (a supervisor's worker processes) get no signal of ours (their parent passes
    the stop on: a second SIGTERM would end a draining worker at once), but they are waited
    for too, and killed with the rest after `timeout`.
    """
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGTERM)
    everyone = processes + (descendants or [])
    for process in _wait(everyone, timeout):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    _wait(everyone, 10)


def current() -> Started:
    return Started.of(os.getpid())
