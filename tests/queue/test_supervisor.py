"""`cerebros worker --processes N`: a supervisor and its worker processes.

The first tests drive `Supervisor` with small stand-in children (no Postgres, no Keras); the
last start `python -m app.cli worker --processes 2` against a database of this module's own
and watch procrastinate's `procrastinate_workers` table.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from app.queue.supervisor import Supervisor, default_processes
from tests.support.postgres import migrated_database
from tests.support.processes import api_server, service_env, start, stop

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


class Running:
    """A supervisor run in a thread (signals are the real-process tests' business)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.supervisor.run(install_signal_handlers=False)

    def join(self, timeout: float) -> int | None:
        self.thread.join(timeout)
        return self.code


def test_default_is_one_process_per_usable_core() -> None:
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_processes() == expected


def test_a_child_that_dies_is_restarted_and_stop_ends_them_all() -> None:
    supervisor = Supervisor(lambda index: SLEEPER, 2, backoff_initial_s=0.1)
    running = Running(supervisor)
    try:
        wait_for(lambda: len(supervisor.pids()) == 2, 30, "two children")
        first = supervisor.pids()
        os.kill(first[0], signal.SIGKILL)
        wait_for(
            lambda: len(supervisor.pids()) == 2 and first[0] not in supervisor.pids(),
            30,
            "the killed child replaced",
        )
        assert first[1] in supervisor.pids()  # the other one was left alone
        children = [psutil.Process(pid) for pid in supervisor.pids()]
    finally:
        supervisor.request_stop()
    assert running.join(30) == 0
    assert not psutil.wait_procs(children, timeout=10)[1]


def test_the_backoff_doubles_and_a_child_that_keeps_dying_makes_it_give_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    supervisor = Supervisor(
        lambda index: failing if index == 2 else SLEEPER,
        2,
        backoff_initial_s=0.1,
        backoff_max_s=0.3,
        max_deaths=4,
        death_window_s=60,
    )
    caplog.set_level("INFO", logger="app.queue.supervisor")
    started = time.monotonic()
    code = Running(supervisor).join(60)
    assert code == 1
    assert time.monotonic() - started < 30
    messages = [r.getMessage() for r in caplog.records]
    restarts = [m for m in messages if "exited unexpectedly (exit code 3)" in m]
    assert [m.rsplit("restarting it in ", 1)[1] for m in restarts] == ["0.1s", "0.2s", "0.3s"]
    assert any("exited 4 times within 60s" in m and "giving up" in m for m in messages)
    assert not supervisor.pids(), "the healthy child is stopped too"


def test_stop_lets_children_drain_and_kills_those_that_outlast_the_timeout(
    tmp_path: Path,
) -> None:
    # Child 1 drains for a second on SIGTERM, then exits; child 2 ignores SIGTERM.
    drains = textwrap.dedent(
        f"""
        import signal, sys, time
        def done(*_):
            time.sleep(1)
            open({str(tmp_path / "drained")!r}, "w").close()
            sys.exit(0)
        signal.signal(signal.SIGTERM, done)
        open({str(tmp_path / "ready1")!r}, "w").close()
        time.sleep(120)
        """
    )
    stubborn = textwrap.dedent(
        f"""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(tmp_path / "ready2")!r}, "w").close()
        time.sleep(120)
        """
    )
    scripts = {1: drains, 2: stubborn}
    supervisor = Supervisor(
        lambda index: [sys.executable, "-c", scripts[index]], 2, stop_timeout_s=3
    )
    running = Running(supervisor)
    wait_for(
        lambda: (tmp_path / "ready1").exists() and (tmp_path / "ready2").exists(),
        30,
        "both children ready",
    )
    supervisor.request_stop()
    supervisor.request_stop()  # a repeated stop changes nothing
    began = time.monotonic()
    assert running.join(30) == 0
    took = time.monotonic() - began
    assert (tmp_path / "drained").exists()
    assert 2.5 <= took < 15, took  # the stubborn one was killed at the timeout


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    """SIGKILL leaves the supervisor no time to stop them: the kernel does (PDEATHSIG)."""
    child = (
        "from app.queue.supervisor import become_child; become_child(1, None, None); import time; "
    )
    child += "time.sleep(120)"
    program = textwrap.dedent(
        f"""
        import sys
        from app.queue.supervisor import Supervisor
        Supervisor(lambda i: [sys.executable, "-c", {child!r}], 2).run()
        """
    )
    supervisor = subprocess.Popen([sys.executable, "-c", program])
    try:
        root = psutil.Process(supervisor.pid)
        wait_for(lambda: len(root.children()) == 2, 30, "two children")
        children = root.children()
        wait_for(lambda: all(c.name() == "cerebros-w1" for c in children), 30, "children named")
        supervisor.kill()
        supervisor.wait(10)
        assert not psutil.wait_procs(children, timeout=10)[1], "children outlived it"
    finally:
        stop(supervisor, signal.SIGKILL)


# Real `cerebros worker --processes 2` processes against Postgres.

STALLED_AFTER_S = 6  # heartbeats every 2 s, so a dead worker's row is stale within seconds
LIVE_S = 5


@pytest.fixture(scope="module")
def database_url(admin_url: str) -> Iterator[str]:
    """This module's own database: its workers are the only ones in procrastinate_workers."""
    yield from migrated_database(admin_url, prefix="cerebros_sup")


def live_workers(url: str) -> set[int]:
    """Ids of the procrastinate workers that sent a heartbeat within LIVE_S."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id FROM procrastinate_workers "
            "WHERE last_heartbeat > now() - make_interval(secs => %s)",
            (LIVE_S,),
        ).fetchall()
    return {row[0] for row in rows}


def jobs(url: str, status: str, task: str | None = None) -> set[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id FROM procrastinate_jobs "
            "WHERE status = %s AND task_name = coalesce(%s, task_name)",
            (status, task),
        )
        return {row[0] for row in rows.fetchall()}


def connected_children(url: str) -> dict[int, int]:
    """Worker process number -> pid, from the application_name of its connections."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT application_name FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE 'cerebros-worker-%%'"
        ).fetchall()
    found: dict[int, int] = {}
    for (name,) in rows:
        index, pid = name.removeprefix("cerebros-worker-").split(":")
        found[int(index)] = int(pid)
    return found


@pytest.mark.slow
def test_worker_processes_register_are_restarted_and_drain_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    env = service_env(database_url, CEREBROS_STALLED_AFTER_SECONDS=str(STALLED_AFTER_S))
    env.pop("PGAPPNAME", None)
    log = tmp_path / "worker.log"
    proc = start(["worker", "--processes", "2"], env, log)
    supervisor = psutil.Process(proc.pid)

    def children() -> set[int]:
        return {c.pid for c in supervisor.children() if c.status() != psutil.STATUS_ZOMBIE}

    try:
        wait_for(
            lambda: (
                len(live_workers(database_url)) == 2 and len(connected_children(database_url)) == 2
            ),
            180,
            f"two live workers (log: {log})",
        )
        workers = live_workers(database_url)
        by_index = connected_children(database_url)
        assert set(by_index) == {1, 2}
        assert set(by_index.values()) == children()  # two distinct pids: the children

        os.kill(by_index[1], signal.SIGKILL)

        def restarted() -> bool:
            live, now = live_workers(database_url), connected_children(database_url)
            return (
                len(live) == 2
                and len(live - workers) == 1  # the new process registered, the dead one is stale
                and now.get(1) not in (None, by_index[1])
            )

        wait_for(restarted, 180, f"worker process 1 restarted (log: {log})")
        after = connected_children(database_url)
        assert after[2] == by_index[2]  # the other one kept running
        assert set(after.values()) == children()
        output = log.read_text()
        assert f"worker process 1 (pid {by_index[1]}) exited unexpectedly (killed by SIGKILL)" in (
            output
        )
        pids = [psutil.Process(pid) for pid in after.values()]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        stop(proc)
    assert not psutil.wait_procs(pids, timeout=10)[1], "a worker process outlived the supervisor"
    assert not live_workers(database_url)  # each unregistered on its way out
    assert "all worker processes stopped" in log.read_text()


SPEC = {
    "dataset_id": "digits",
    "objective": "val_accuracy",
    "search_space": {"layers": [2], "neurons": [64]},
    "budget": {"max_trials": 1},
    # Random search: one 40-epoch trial to catch in training (asha's first is 1 epoch).
    "parameters": {"strategy": "random", "epochs": 40, "early_stopping_patience": 40, "seed": 3},
}


def job_events(url: str, job_ids: set[int]) -> list[tuple[int, str, datetime.datetime]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT job_id, type::text, at FROM procrastinate_events "
            "WHERE job_id = ANY(%s) ORDER BY id",
            (sorted(job_ids),),
        ).fetchall()
    return [(job, kind, at) for job, kind, at in rows]


@pytest.mark.slow
def test_sigterm_lets_each_worker_process_finish_its_job(database_url: str, tmp_path: Path) -> None:
    """The supervisor passes one SIGTERM on: a job in flight ends succeeded, not retried."""
    env = service_env(database_url)
    log = tmp_path / "worker.log"
    with api_server(env, tmp_path) as base:
        run_id = httpx.post(f"{base}/runs", json=SPEC, timeout=10).json()["id"]
        proc = start(["worker", "--processes", "2", "--stop-timeout", "170"], env, log)
        try:
            training: set[int] = set()

            def in_flight() -> bool:
                nonlocal training
                assert not jobs(database_url, "failed"), f"a job failed: {log}"
                doing = jobs(database_url, "doing", task="cerebros.run_trial")
                if doing and doing == training:  # still the same job a second later
                    return True
                training = doing
                time.sleep(1)
                return False

            wait_for(in_flight, 180, f"a trial in training (log: {log})")
            with psycopg.connect(database_url) as conn:
                row = conn.execute("SELECT now()").fetchone()
            assert row is not None
            signalled = row[0]
            proc.send_signal(signal.SIGTERM)
            proc.send_signal(signal.SIGTERM)  # a second one must not cut the drain short
            assert proc.wait(timeout=200) == 0
        finally:
            stop(proc)
        run = httpx.get(f"{base}/runs/{run_id}", timeout=10).json()
    events = job_events(database_url, training)
    for job in training:
        kinds = [kind for j, kind, _ in events if j == job]
        assert kinds == ["deferred", "started", "succeeded"], (job, kinds)  # never retried
        finished = next(at for j, kind, at in events if j == job and kind == "succeeded")
        assert finished > signalled, "the job went on after the signal"
    assert run["status"] in {"running", "succeeded"}, run  # the rest waits for a worker
    assert "all worker processes stopped" in log.read_text()


def test_an_unusable_database_stops_the_supervisor_before_any_child(tmp_path: Path) -> None:
    env = service_env("postgresql://postgres@127.0.0.1:1/nowhere")
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker", "--processes", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "the database at postgresql://postgres@127.0.0.1:1/nowhere is unusable" in done.stderr
    assert "worker process 1 started" not in done.stderr
