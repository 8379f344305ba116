"""`cerebros run SPEC --local` interrupted: Ctrl+C cancels the run (it has no job to cancel)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.slow

LONG_SPEC = {
    "dataset_id": "digits",
    "search_space": {"layers": [1, 2, 3], "neurons": [16, 32, 64, 128]},
    "budget": {"max_trials": 20},
    "parameters": {"strategy": "random", "epochs": 50},  # 50-epoch trials (asha: 1 at first)
}


def trained_epochs(database_url: str, run_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(epochs_run), 0) FROM trials WHERE run_id = %s", (run_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def test_ctrl_c_cancels_a_local_run_which_ends_cancelled(database_url: str, tmp_path: Path) -> None:
    spec = tmp_path / "long.json"
    spec.write_text(json.dumps(LONG_SPEC))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CEREBROS_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "run", str(spec), "--local"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    run_id = ""
    for line in proc.stdout:
        match = re.search(r"run ([0-9a-f-]{36}) running here", line)
        if match:
            run_id = match.group(1)
            break
    assert run_id, "the run never started"
    deadline = time.monotonic() + 120
    while trained_epochs(database_url, run_id) < 2:  # training, in this very process
        assert time.monotonic() < deadline
        time.sleep(0.3)

    proc.send_signal(signal.SIGINT)
    output = proc.stdout.read()

    assert proc.wait(timeout=120) == 1, output
    assert f"cancelling run {run_id}" in output
    assert f"run {run_id}: cancelled" in output
    with psycopg.connect(database_url) as conn:
        status = conn.execute("SELECT status FROM runs WHERE id = %s", (run_id,)).fetchone()
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM run_events WHERE run_id = %s ORDER BY id", (run_id,)
            )
        ]
    assert status == ("cancelled",)
    assert names.count("cerebros.nas.run.cancelled") == 1
