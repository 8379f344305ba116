"""200 concurrent POST /runs at one real API process: exactly 200 runs and jobs, replays free."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.security.conftest import bearer, issue_token, run_spec, unique_owner
from tests.support.processes import api_server, service_env

CONCURRENT = 200


def stored_for(database_url: str, owner: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(j.id) FROM runs r "
            "LEFT JOIN procrastinate_jobs j ON j.id = r.job_id AND j.queue_name = 'ml' "
            "WHERE r.owner = %s",
            (owner,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def post_all(base: str, token: str, keys: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(
                    "/runs", json=run_spec(), headers={**bearer(token), "Idempotency-Key": key}
                )
                for key in keys
            )
        )


@pytest.mark.slow
async def test_200_concurrent_posts_then_200_replays(live_api: str, database_url: str) -> None:
    owner = unique_owner("load")
    token = issue_token(database_url, owner)
    keys = [f"load-{uuid.uuid4()}" for _ in range(CONCURRENT)]

    first = await post_all(live_api, token, keys)
    assert sorted({r.status_code for r in first}) == [202], [r.text for r in first][:3]
    assert len({r.json()["id"] for r in first}) == CONCURRENT
    assert stored_for(database_url, owner) == (CONCURRENT, CONCURRENT)

    again = await post_all(live_api, token, keys)
    assert sorted({r.status_code for r in again}) == [200]
    assert [r.json()["id"] for r in again] == [r.json()["id"] for r in first]
    assert stored_for(database_url, owner) == (CONCURRENT, CONCURRENT)


@pytest.mark.slow
async def test_queued_limit_holds_under_concurrency(database_url: str, tmp_path: Path) -> None:
    env = service_env(database_url, CEREBROS_AUTH="true", CEREBROS_MAX_QUEUED_RUNS_PER_OWNER="5")
    owner = unique_owner("race")
    token = issue_token(database_url, owner)
    with api_server(env, tmp_path) as base:
        responses = await post_all(base, token, [f"race-{uuid.uuid4()}" for _ in range(40)])
    codes = [r.status_code for r in responses]
    assert codes.count(202) == 5 and codes.count(429) == 35, codes
    assert stored_for(database_url, owner) == (5, 5)
