"""One runtime per process, passed in: the worker hands it to tasks through procrastinate's
`additional_context`, the API through `app.state` and its dependencies."""

from __future__ import annotations

import asyncio

import procrastinate
from fastapi import FastAPI
from fastapi.testclient import TestClient
from procrastinate import JobContext
from procrastinate.testing import InMemoryConnector
from procrastinate.worker import Worker

from app.api.deps import StateDep
from app.api.state import ApiRuntime, ApiState
from app.config import Settings
from app.events.hub import EventHub
from app.queue.tasks import RUNTIME_KEY, MissingRuntime, runtime_of
from app.runtime import Runtime, create_runtime

URL = "postgresql://nobody@127.0.0.1:1/nothing"  # never connected to here


def in_memory_queue() -> procrastinate.App:
    return procrastinate.App(connector=InMemoryConnector())


async def test_a_task_gets_the_workers_runtime_from_its_context() -> None:
    runtime = create_runtime(Settings(database_url=URL), URL, in_memory_queue())
    queue = runtime.queue
    seen: list[Runtime] = []

    @queue.task(name="probe", pass_context=True)
    async def probe(context: JobContext) -> None:
        seen.append(runtime_of(context))

    async with queue.open_async():
        await probe.defer_async()
        worker = Worker(queue, wait=False, additional_context={RUNTIME_KEY: runtime})
        await asyncio.wait_for(worker.run(), 10)
    await runtime.close()
    assert seen == [runtime]
    assert seen[0] is runtime  # the object itself: the engine and its pool are shared


async def test_a_task_without_a_runtime_fails_for_good() -> None:
    queue = in_memory_queue()
    failures: list[MissingRuntime] = []

    @queue.task(name="probe", pass_context=True)
    async def probe(context: JobContext) -> None:
        try:
            runtime_of(context)
        except MissingRuntime as exc:
            failures.append(exc)
            raise

    async with queue.open_async():
        await probe.defer_async()
        await asyncio.wait_for(Worker(queue, wait=False).run(), 10)
    assert len(failures) == 1 and not failures[0].retryable
    assert "cerebros worker" in str(failures[0])


async def test_routes_read_the_api_runtime_through_a_dependency() -> None:
    runtime = create_runtime(Settings(database_url=URL), URL, in_memory_queue())
    hub = EventHub.for_database(URL, runtime.sessions)
    api_runtime = ApiRuntime.with_hub(runtime, hub)
    assert isinstance(api_runtime, Runtime) and ApiState is ApiRuntime
    assert (api_runtime.engine, api_runtime.sessions, api_runtime.queue, api_runtime.hub) == (
        runtime.engine,
        runtime.sessions,
        runtime.queue,
        hub,
    )
    api = FastAPI()
    api.state.cerebros = api_runtime

    @api.get("/url")
    async def url(state: StateDep) -> str:
        assert state is api_runtime
        return state.database_url

    assert TestClient(api).get("/url").json() == URL
    await runtime.close()
