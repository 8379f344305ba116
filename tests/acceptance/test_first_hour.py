"""The README's first command on a fresh clone, as a newcomer would run it.

`bash scripts/up.sh` in a new clone (its own .venv, a fresh data directory, no
DATABASE_URL), the README's example spec submitted over HTTP, the model downloaded and
loaded with `keras.saving.load_model` in a separate process, its predictions on raw rows
compared with `/predict`, then `cerebros down`: nothing of ours may be left running.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from app.db.embedded import locate_cluster
from tests.support.processes import free_port, wait_http

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def readme_spec() -> dict[str, object]:
    """The JSON body of the README's first `curl -X POST .../runs` example."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"-X POST localhost:8000/runs .*?-d '(\{.*?\})'", readme, re.S)
    assert match, "the README lost its POST /runs example"
    spec: dict[str, object] = json.loads(match.group(1))
    return spec


def processes_mentioning(*needles: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(n in cmdline for n in needles):
            found.append(f"{entry.name}: {cmdline}")
    return found


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_readme_first_command_to_a_model_in_your_own_python(tmp_path: Path) -> None:
    clone, data = tmp_path / "repo", tmp_path / "data"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CEREBROS_"))}
    env.update(CEREBROS_DATA_DIR=str(data), PYTHONUNBUFFERED="1")
    env.pop("VIRTUAL_ENV", None)
    port = free_port()
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        ["bash", "scripts/up.sh", "--port", str(port)],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health", timeout=900)  # the first run installs everything
        token = (data / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(f"{base}/runs", json=readme_spec(), headers=headers, timeout=30)
        assert created.status_code == 202, created.text
        run_id = created.json()["id"]
        deadline = time.monotonic() + 600
        while (run := httpx.get(f"{base}/runs/{run_id}", headers=headers).json())["status"] not in (
            "succeeded",
            "failed",
            "cancelled",
        ):
            assert time.monotonic() < deadline, run
            time.sleep(1)
        assert run["status"] == "succeeded", run

        model = tmp_path / "best.keras"
        model.write_bytes(
            httpx.get(f"{base}/runs/{run_id}/model", headers=headers, timeout=60).content
        )
        from sklearn.datasets import load_digits

        rows = load_digits().data[:50].tolist()  # raw pixel values 0-16
        served = httpx.post(
            f"{base}/runs/{run_id}/predict", json={"rows": rows}, headers=headers, timeout=60
        ).json()["predictions"]
        script = (
            "import json, sys, keras, numpy as np\n"
            "model = keras.saving.load_model(sys.argv[1])\n"
            "rows = np.array(json.loads(sys.argv[2]), dtype='float32')\n"
            "print(json.dumps(model.predict(rows, verbose=0).argmax(axis=1).tolist()))\n"
        )
        own = subprocess.run(
            [str(clone / ".venv/bin/python"), "-c", script, str(model), json.dumps(rows)],
            env={**env, "KERAS_BACKEND": "torch"},
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        assert json.loads(own.stdout.strip().splitlines()[-1]) == served
    finally:
        down = subprocess.run(
            [str(clone / ".venv/bin/cerebros"), "down"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        log.close()
    cluster = locate_cluster(data).home
    try:
        assert down.returncode == 0, down.stdout + down.stderr
        assert "stopped" in down.stdout
        time.sleep(1)
        assert not listening(port)
        assert processes_mentioning(str(clone), str(data), str(cluster)) == []
    finally:
        if cluster != data.absolute():  # as root: a cluster of our own outside tmp_path
            shutil.rmtree(cluster, ignore_errors=True)
