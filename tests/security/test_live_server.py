"""Against a real `cerebros serve`: the global stream is per owner, logs hold no secrets."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.publish import publish_event
from tests.security.conftest import bearer, issue_token, run_spec, unique_owner
from tests.support.processes import api_server, service_env


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    logs = tmp_path_factory.mktemp("security-api")
    env = service_env(database_url, CEREBROS_AUTH="true")
    with api_server(env, logs) as base:
        yield base, logs / "api.log"


async def read_events(response: httpx.Response, until_run: str, seen: list[dict[str, str]]) -> None:
    async for line in response.aiter_lines():
        if line.startswith("data:") and '"run_id"' in line:
            event = json.loads(line.removeprefix("data:").strip())
            seen.append(event)
            if event["run_id"] == until_run:
                return


@pytest.mark.slow
async def test_global_stream_shows_only_the_callers_runs(
    live: tuple[str, Path],
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    base, _ = live
    alice = issue_token(database_url, unique_owner("alice"))
    bob = issue_token(database_url, unique_owner("bob"))
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        alice_run = (await client.post("/runs", json=run_spec(), headers=bearer(alice))).json()
        bob_run = (await client.post("/runs", json=run_spec(), headers=bearer(bob))).json()
        async with client.stream("GET", "/events/stream", headers=bearer(bob)) as response:
            assert response.status_code == 200
            await asyncio.sleep(1.0)  # let the subscription settle before publishing
            async with session_factory.begin() as session:
                await publish_event(session, uuid.UUID(alice_run["id"]), "cerebros.nas.test", {})
            async with session_factory.begin() as session:
                await publish_event(session, uuid.UUID(bob_run["id"]), "cerebros.nas.test", {})
            seen: list[dict[str, str]] = []
            await asyncio.wait_for(read_events(response, bob_run["id"], seen), 20)
    assert {e["run_id"] for e in seen} == {bob_run["id"]}


@pytest.mark.slow
def test_server_log_never_holds_a_token(live: tuple[str, Path], database_url: str) -> None:
    base, log = live
    good = issue_token(database_url, unique_owner("logged"))
    bad = "cer_0123456789ab_an-invalid-secret-for-the-log-test"
    with httpx.Client(base_url=base, timeout=30) as client:
        client.post("/runs", json=run_spec(), headers=bearer(good))
        client.get("/runs", headers=bearer(bad))
        client.get("/runs/not-a-uuid", headers=bearer(good))
    text = log.read_text(errors="replace")
    assert "GET /runs" in text  # the access log is there...
    for secret in (good, good.split("_", 2)[2], bad):
        assert secret not in text  # ...without the tokens
