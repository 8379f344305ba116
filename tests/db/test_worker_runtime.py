"""`cerebros worker` builds one runtime and hands it to procrastinate's worker, whose jobs
read it from their context (no module global); it closes the runtime when it stops."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

import app.queue.worker as worker_module
from app.config import Settings
from app.queue.tasks import RUNTIME_KEY
from app.runtime import Runtime

pytestmark = pytest.mark.postgres


class RecordingWorker:
    """Stands in for procrastinate's Worker: records what it was given, runs no job."""

    built: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.app = kwargs["app"]
        self.worker_id = None
        RecordingWorker.built.append(kwargs)

    async def run(self) -> None:
        return None


async def test_run_worker_passes_its_runtime_to_the_jobs(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[Runtime] = []
    original_close = Runtime.close

    async def close(self: Runtime) -> None:
        closed.append(self)
        await original_close(self)

    monkeypatch.setattr(worker_module, "Worker", RecordingWorker)
    monkeypatch.setattr(Runtime, "close", close)
    settings = Settings(database_url=database_url)
    await worker_module.run_worker(database_url, settings, queues=["ml"], concurrency=1)
    (kwargs,) = RecordingWorker.built
    runtime = kwargs["additional_context"][RUNTIME_KEY]
    assert isinstance(runtime, Runtime)
    assert runtime.queue is kwargs["app"]  # the app the worker takes jobs from
    assert (runtime.settings, runtime.database_url) == (settings, database_url)
    assert closed == [runtime]
