"""Against a real `cerebros serve` with auth: stream limits, revocation, hostile patterns."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from app.auth.tokens import token_id_of
from tests.security.conftest import bearer, issue_token, unique_owner
from tests.support.processes import api_server, service_env

pytestmark = pytest.mark.slow

MAX_STREAMS = 3
RECHECK_SECONDS = 1
AUTH_CACHE_SECONDS = 1  # a revoked token is refused by new requests within this bound


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("stream-limits-api")
    env = service_env(
        database_url,
        CEREBROS_AUTH="true",
        CEREBROS_MAX_STREAMS_PER_OWNER=str(MAX_STREAMS),
        CEREBROS_STREAM_AUTH_RECHECK_SECONDS=str(RECHECK_SECONDS),
        CEREBROS_AUTH_CACHE_SECONDS=str(AUTH_CACHE_SECONDS),
    )
    with api_server(env, logs) as base:
        yield base


def insert_run(database_url: str, owner: str, status: str = "running") -> uuid.UUID:
    run_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (id, owner, status, spec) VALUES (%s, %s, %s, '{}')",
            (run_id, owner, status),
        )
    return run_id


async def control_events(response: httpx.Response) -> list[tuple[str, dict[str, object]]]:
    """The control events (no `id:`) of a stream, read until it closes."""
    found: list[tuple[str, dict[str, object]]] = []
    name, has_id = "", False
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("id:"):
            has_id = True
        elif line.startswith("data:") and not has_id:
            found.append((name, json.loads(line.removeprefix("data:").strip())))
        elif line == "":
            name, has_id = "", False
    return found


async def opening(client: httpx.AsyncClient, url: str, token: str) -> httpx.Response:
    """The answer to a stream request, read no further than its headers (and a problem)."""
    async with client.stream("GET", url, headers=bearer(token)) as response:
        if response.status_code != 200:
            await response.aread()
        return response


async def test_open_streams_are_limited_per_owner(live: str, database_url: str) -> None:
    owner = unique_owner("streamer")
    # Two tokens of one owner share the owner's limit.
    tokens = [issue_token(database_url, owner), issue_token(database_url, owner)]
    other = issue_token(database_url, unique_owner("neighbour"))
    run_id = insert_run(database_url, owner)
    async with httpx.AsyncClient(base_url=live, timeout=httpx.Timeout(10, read=30)) as client:
        async with OpenStreams(client, [tokens[i % 2] for i in range(MAX_STREAMS)]):
            refused = await opening(client, "/events/stream", tokens[0])
            assert refused.status_code == 429
            assert refused.headers["content-type"] == "application/problem+json"
            assert int(refused.headers["retry-after"]) > 0
            assert "CEREBROS_MAX_STREAMS_PER_OWNER" in refused.json()["detail"]
            refused_run = await opening(client, f"/runs/{run_id}/events/stream", tokens[1])
            assert refused_run.status_code == 429
            # Another owner is not affected.
            assert (await opening(client, "/events/stream", other)).status_code == 200
        # Closed streams give their slots back.
        deadline = time.monotonic() + 10
        while (await opening(client, "/events/stream", tokens[0])).status_code != 200:
            assert time.monotonic() < deadline, "slots were not given back"
            await asyncio.sleep(0.2)


class OpenStreams:
    """Hold one open stream per token until the block exits."""

    def __init__(self, client: httpx.AsyncClient, tokens: list[str]) -> None:
        self.client = client
        self.tokens = tokens
        self.responses: list[httpx.Response] = []

    async def __aenter__(self) -> None:
        for token in self.tokens:
            request = self.client.build_request("GET", "/events/stream", headers=bearer(token))
            response = await self.client.send(request, stream=True)
            assert response.status_code == 200, await response.aread()
            self.responses.append(response)

    async def __aexit__(self, *exc: object) -> None:
        for response in self.responses:
            await response.aclose()


async def test_streams_end_when_their_token_is_revoked(live: str, database_url: str) -> None:
    owner = unique_owner("revoked")
    token = issue_token(database_url, owner)
    run_id = insert_run(database_url, owner)
    async with (
        httpx.AsyncClient(base_url=live, timeout=httpx.Timeout(10, read=30)) as client,
        client.stream("GET", "/events/stream", headers=bearer(token)) as everything,
        client.stream("GET", f"/runs/{run_id}/events/stream", headers=bearer(token)) as run,
    ):
        assert everything.status_code == 200 and run.status_code == 200
        readers = [asyncio.create_task(control_events(r)) for r in (everything, run)]
        await asyncio.sleep(0.5)
        with psycopg.connect(database_url, autocommit=True) as conn:  # `token revoke`
            conn.execute(
                "UPDATE api_tokens SET revoked_at = clock_timestamp() WHERE id = %s",
                (token_id_of(token),),
            )
        revoked_at = time.monotonic()
        ended = await asyncio.wait_for(asyncio.gather(*readers), 10 * RECHECK_SECONDS)
        waited = time.monotonic() - revoked_at
    for controls in ended:
        assert controls == [("stream.end", {"reason": "token_revoked"})]
    assert waited < 3 * RECHECK_SECONDS + 2
    # New requests: the token may still be trusted until the cache's bound has passed.
    await asyncio.sleep(max(0.0, revoked_at + AUTH_CACHE_SECONDS - time.monotonic()))
    async with httpx.AsyncClient(base_url=live) as client:
        assert (await client.get("/events/stream", headers=bearer(token))).status_code == 401


# Each took the regex this replaces from tenths of a second to minutes per event name.
HOSTILE_PATTERNS = [
    ("**." * 66) + "x",
    ("cerebros.**.*." * 15)[:197] + ".x",
    "cerebros.nas.trial.e" + "*e" * 89 + "x",
]


def test_a_hostile_pattern_does_not_freeze_the_api(live: str, database_url: str) -> None:
    owner = unique_owner("hostile")
    token = issue_token(database_url, owner)
    run_id = insert_run(database_url, owner)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for i in range(137):
            conn.execute(
                "INSERT INTO run_events (run_id, name, payload) VALUES (%s, %s, %s)",
                (run_id, "cerebros.nas.trial.epoch", json.dumps({"epoch": i})),
            )
        conn.execute("UPDATE runs SET status = 'succeeded' WHERE id = %s", (run_id,))
    slowest = 0.0
    stop = threading.Event()

    def probe() -> None:
        nonlocal slowest
        while not stop.is_set():
            started = time.monotonic()
            httpx.get(f"{live}/health", timeout=60)
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        for pattern in HOSTILE_PATTERNS:
            assert len(pattern) <= 200
            started = time.monotonic()
            with httpx.stream(
                "GET",
                f"{live}/runs/{run_id}/events/stream",
                params={"pattern": pattern},
                headers=bearer(token),
                timeout=httpx.Timeout(10, read=20),
            ) as response:
                assert response.status_code == 200
                body = "".join(response.iter_text())
            assert "stream.end" in body and "id:" not in body  # nothing matched, then the end
            assert time.monotonic() - started < 5
    finally:
        stop.set()
        prober.join(timeout=60)
    assert slowest < 2.0, slowest


@pytest.mark.parametrize("path", ["/events/stream", "/runs/{run}/events/stream"])
def test_an_event_id_beyond_bigint_is_a_422(live: str, database_url: str, path: str) -> None:
    owner = unique_owner("bigid")
    token = issue_token(database_url, owner)
    url = live + path.format(run=insert_run(database_url, owner))
    for value in ("99999999999999999999", str(2**63)):
        response = httpx.get(url, headers={**bearer(token), "Last-Event-ID": value}, timeout=10)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["Last-Event-ID"]
    with httpx.stream(
        "GET",
        url,
        headers={**bearer(token), "Last-Event-ID": str(2**63 - 1)},
        timeout=httpx.Timeout(10, read=2),
    ) as ok:
        assert ok.status_code == 200
