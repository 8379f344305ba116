"""Worker processes under one supervisor: `cerebros worker --processes N`.

Keras trains one model per process (`keras.backend.clear_session` is process-wide), so a
host runs its jobs in parallel with processes, not threads. The supervisor starts N children,
each a fresh interpreter (`subprocess`, never a fork of a process that imported torch)
running the ordinary single worker, and keeps them running:

- SIGTERM or SIGINT to the supervisor: every child gets one SIGTERM (procrastinate's
  graceful stop: it finishes its current job, heartbeating all the while, then exits); the
  supervisor waits up to `stop_timeout_s` for them, SIGKILLs what is left and returns 0.
  A repeated signal while stopping is logged and otherwise ignored, so two senders (`cerebros
  down` and `up`) do not turn the drain into a hard stop.
- A child that exits while no stop was asked for (a crash, the OOM killer, `kill -9`) is
  started again after a backoff that doubles from `backoff_initial_s` up to `backoff_max_s`
  and starts over once a child has lived `stable_after_s`. A child that exits `max_deaths`
  times within `death_window_s` is a configuration error, not bad luck: the supervisor stops
  the others and returns 1 with a message.
- Each child runs in a process group of its own, so a terminal's Ctrl+C reaches it only once,
  through the supervisor. If the supervisor dies without a word (SIGKILL), the kernel kills
  its children (`PR_SET_PDEATHSIG`, Linux; a watchdog thread elsewhere): their jobs then
  stall and are retried by other workers, as with any killed worker.

This module imports neither Keras nor the worker: the supervisor stays small, and the
children import the engine themselves.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Final

log = logging.getLogger(__name__)

# Set in a child's environment: the supervisor's pid (a child checks it is still its parent).
SUPERVISOR_PID_ENV: Final = "CEREBROS_SUPERVISOR_PID"

# What signal.signal returns: the handler it replaced.
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

_PR_SET_NAME: Final = 15
_PR_SET_PDEATHSIG: Final = 1


def default_processes() -> int:
    """One worker process per core this process may run on (its CPU affinity, if known)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        with contextlib.suppress(OSError):
            return max(1, len(affinity(0)))
    return max(1, os.cpu_count() or 1)


def probe_database(url: str, timeout_s: int = 5) -> str | None:
    """Why the queue's database at `url` is unusable, or None if a worker can use it.

    Connects once and reads procrastinate's worker table, so a wrong URL, a server that does
    not answer and a database never migrated are reported before any child starts.
    """
    import psycopg

    from app.db.urls import libpq_url

    try:
        with psycopg.connect(libpq_url(url), connect_timeout=timeout_s) as conn:
            conn.execute("SELECT 1 FROM procrastinate_workers LIMIT 0")
    except psycopg.errors.UndefinedTable:
        return "its queue tables do not exist: run `cerebros migrate` first"
    except psycopg.Error as exc:
        return f"cannot connect: {str(exc).strip() or type(exc).__name__}"
    return None


@dataclass
class _Slot:
    """One child position (1..N) and the process that fills it now."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff_s: float = 0.0
    deaths: collections.deque[float] = field(default_factory=collections.deque)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Start `processes` children from `command(index)` and keep them running until stopped.

    Args:
        command: The argv of child `index` (1-based).
        processes: How many children run at once.
        env: Their environment (this process's, when None); the supervisor's pid is added.
        stop_timeout_s: How long children may drain after the stop signal before SIGKILL.
        backoff_initial_s: Wait before the first restart of a child that exited.
        backoff_max_s: Longest wait between restarts.
        stable_after_s: A child that lived this long resets its slot's backoff.
        max_deaths: Exits of one slot within `death_window_s` that make the supervisor give up.
        death_window_s: See `max_deaths`.
        poll_s: How often children are checked.
    """

    def __init__(
        self,
        command: Callable[[int], list[str]],
        processes: int,
        *,
        env: Mapping[str, str] | None = None,
        stop_timeout_s: float = 30.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 30.0,
        stable_after_s: float = 60.0,
        max_deaths: int = 5,
        death_window_s: float = 120.0,
        poll_s: float = 0.2,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.command = command
        self.env = dict(os.environ if env is None else env)
        self.env[SUPERVISOR_PID_ENV] = str(os.getpid())
        self.stop_timeout_s = stop_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stable_after_s = stable_after_s
        self.max_deaths = max_deaths
        self.death_window_s = death_window_s
        self.poll_s = poll_s
        self.slots = [_Slot(i, backoff_s=backoff_initial_s) for i in range(1, processes + 1)]
        # Set by the signal handler, read by the loop: no lock, which a handler could find
        # held by the very thread it interrupted.
        self._stop_signal: int | None = None
        self._lock = threading.Lock()

    def pids(self) -> list[int]:
        """The pids of the children running now."""
        with self._lock:
            return [s.proc.pid for s in self.slots if s.proc is not None and s.proc.poll() is None]

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask the children to finish their jobs and exit (what SIGTERM/SIGINT do)."""
        if self._stop_signal is not None:
            log.info(
                "already stopping (%s again): worker processes finish their jobs for up to %.0fs",
                signal.Signals(signum).name,
                self.stop_timeout_s,
            )
            return
        self._stop_signal = signum

    def run(self, *, install_signal_handlers: bool = True) -> int:
        """Supervise until stopped (0) or until a child keeps dying (1)."""
        previous: dict[signal.Signals, _Handler] = {}
        if install_signal_handlers:
            for stop_signal in (signal.SIGTERM, signal.SIGINT):
                previous[stop_signal] = signal.signal(stop_signal, self._on_signal)
        try:
            log.info(
                "supervising %d worker processes (supervisor pid %d)", len(self.slots), os.getpid()
            )
            for slot in self.slots:
                self._start(slot)
            gave_up = self._supervise()
            self._stop_children()
            return 1 if gave_up else 0
        finally:
            for stop_signal, handler in previous.items():
                signal.signal(stop_signal, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request_stop(signum)

    def _start(self, slot: _Slot) -> None:
        argv = self.command(slot.index)
        proc = subprocess.Popen(argv, env=self.env, process_group=0)
        with self._lock:
            slot.proc = proc
            slot.started_at = time.monotonic()
            slot.restart_at = None
        log.info("worker process %d started (pid %d)", slot.index, proc.pid)

    def _supervise(self) -> bool:
        """Restart children until a stop is asked for (False) or one keeps dying (True)."""
        while self._stop_signal is None:
            now = time.monotonic()
            for slot in self.slots:
                if slot.proc is not None and (code := slot.proc.poll()) is not None:
                    if self._stop_signal is not None:
                        break  # it got the stop signal itself (e.g. a process-group Ctrl+C)
                    if self._died(slot, code, now):
                        return True
                if slot.restart_at is not None and now >= slot.restart_at:
                    self._start(slot)
            time.sleep(self.poll_s)
        log.info(
            "%s: stopping %d worker processes (they finish their current jobs)",
            signal.Signals(self._stop_signal).name,
            len(self.pids()),
        )
        return False

    def _died(self, slot: _Slot, code: int, now: float) -> bool:
        """Schedule the restart of `slot`'s child, which exited; True: give up instead."""
        assert slot.proc is not None
        pid, lived = slot.proc.pid, now - slot.started_at
        with self._lock:
            slot.proc = None
        slot.deaths.append(now)
        while slot.deaths and now - slot.deaths[0] > self.death_window_s:
            slot.deaths.popleft()
        if len(slot.deaths) >= self.max_deaths:
            log.error(
                "worker process %d (pid %d) exited %d times within %.0fs (last: %s); giving up. "
                "Check DATABASE_URL and the errors above",
                slot.index,
                pid,
                len(slot.deaths),
                self.death_window_s,
                _describe_exit(code),
            )
            return True
        if lived >= self.stable_after_s:
            slot.backoff_s = self.backoff_initial_s
        delay = slot.backoff_s
        slot.backoff_s = min(slot.backoff_s * 2, self.backoff_max_s)
        slot.restart_at = now + delay
        log.warning(
            "worker process %d (pid %d) exited unexpectedly (%s) after %.1fs; "
            "restarting it in %.1fs",
            slot.index,
            pid,
            _describe_exit(code),
            lived,
            delay,
        )
        return False

    def _stop_children(self) -> None:
        """SIGTERM every child once, wait up to `stop_timeout_s`, SIGKILL the rest."""
        with self._lock:
            procs = [s.proc for s in self.slots if s.proc is not None]
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "worker process pid %d still running after %.0fs: killing it "
                    "(its job is retried by another worker)",
                    proc.pid,
                    self.stop_timeout_s,
                )
                proc.kill()
                proc.wait()
        log.info("all worker processes stopped")


def become_child(index: int, supervisor_pid: int | None, app_name: str | None) -> str:
    """Prepare this process to run as child `index` of a supervisor; its label for logs.

    ``supervisor_pid`` and ``app_name`` are `Settings.supervisor_pid` and
    `Settings.pg_application_name` (the environment the supervisor gave the child).

    It dies with its supervisor (SIGKILL when the supervisor's thread exits, like a killed
    worker), shows as `cerebros-w<index>` in `ps -o comm`/`top`, and names itself to Postgres
    (`application_name`, unless PGAPPNAME is set) as `cerebros-worker-<index>:<pid>`.
    """
    parent = supervisor_pid or os.getppid()
    _die_with_parent(parent)
    _set_process_name(f"cerebros-w{index}")
    if app_name is None:  # libpq reads it for every connection this process opens
        os.environ["PGAPPNAME"] = f"cerebros-worker-{index}:{os.getpid()}"
    return f"worker-{index}"


def tag_text_logs(label: str) -> None:
    """Put `label[pid]` before the logger's name on this process's text log lines.

    Children share their supervisor's stderr; in JSON lines the `worker` field (host:pid)
    already tells them apart.
    """
    from app.observability.logs import TEXT_FORMAT, JsonFormatter

    tagged = TEXT_FORMAT.replace("%(name)s", f"{label}[{os.getpid()}] %(name)s")
    for handler in logging.getLogger().handlers:
        if not isinstance(handler.formatter, JsonFormatter):
            handler.setFormatter(logging.Formatter(tagged))


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _set_process_name(name: str) -> None:
    libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _die_with_parent(parent: int) -> None:
    libc = _libc()
    if libc is None or libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # it died before the death signal was armed
        os.kill(os.getpid(), signal.SIGKILL)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGKILL)
