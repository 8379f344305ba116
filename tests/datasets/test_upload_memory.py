"""A 100 MB upload through a real uvicorn API stays within a memory bound: the file goes to
a temporary file, is read in batches, and reaches Postgres in 1 MiB chunks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from tests.support.processes import free_port, service_env, start, stop, wait_http

pytestmark = pytest.mark.slow

SIZE = 100 * 1024 * 1024
#: Growth of the API's resident memory allowed during the upload: well under the file's
#: size, so the file was never held whole (let alone twice).
BOUND = 32 * 1024 * 1024


def write_csv(path: Path, size: int) -> int:
    """A CSV of about ``size`` bytes (numbers, a string column, missing values); its rows."""
    rng = np.random.default_rng(0)
    n = 20_000
    colors = np.array(["red", "green", "blue", "cyan"])[rng.integers(0, 4, n)]
    lines = [
        f"{a:.4f},{b:.3f},{c},{'' if i % 50 == 0 else f'{d:.2f}'},{i % 3}"
        for i, (a, b, c, d) in enumerate(
            zip(rng.normal(size=n), rng.normal(size=n) * 100, colors, rng.random(n), strict=True)
        )
    ]
    block = ("\n".join(lines) + "\n").encode()
    rows = 0
    with path.open("wb") as fh:
        fh.write(b"a,b,color,d,label\n")
        written = 0
        while written < size:
            fh.write(block)
            written += len(block)
            rows += n
    return rows


class PeakRss:
    """Samples a process's resident memory in a thread; `peak` is the largest seen."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = process.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def test_a_100_mb_upload_stays_within_a_memory_bound(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    rows = write_csv(path, SIZE)
    env = service_env(database_url, CEREBROS_MAX_DATASET_BYTES=str(2 * SIZE))
    port = free_port()
    proc = start(["serve", "--port", str(port)], env, tmp_path / "api.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health")
        api = psutil.Process(proc.pid)
        warm = httpx.post(
            f"{base}/datasets",
            files={"file": ("warm.csv", path.open("rb").read(200_000).rsplit(b"\n", 1)[0])},
            data={"target": "label"},
            timeout=60,
        )
        assert warm.status_code == 201, warm.text  # the code paths loaded once
        before = api.memory_info().rss
        with PeakRss(api) as rss, path.open("rb") as fh:
            response = httpx.post(
                f"{base}/datasets",
                files={"file": ("big.csv", fh)},
                data={"target": "label"},
                timeout=600,
            )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["rows"] == rows and body["size_bytes"] == path.stat().st_size
        growth = rss.peak - before
        print(f"API resident memory: {before / 2**20:.0f} MiB, peak +{growth / 2**20:.1f} MiB")
        assert growth < BOUND, f"the API grew by {growth / 2**20:.0f} MiB"
    finally:
        stop(proc)
