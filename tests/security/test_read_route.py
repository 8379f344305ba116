"""GET /runs/{id} skips FastAPI's dependency solving (app/api/read_route.py) without changing
any answer: the caller is still checked, other owners still get 404, bad ids still 422."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import fastapi.routing
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.testclient import TestClient

from app.api.deps import get_principal
from app.api.read_route import CallerOnlyRoute
from app.auth.tokens import Principal
from tests.security.conftest import bearer, issue_token, run_spec, unique_owner


@pytest.fixture
def solves(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths whose request FastAPI solved dependencies for."""
    seen: list[str] = []
    real = fastapi.routing.solve_dependencies  # type: ignore[attr-defined]

    async def counting(*, request: Request, **kw: Any) -> Any:
        seen.append(request.url.path)
        return await real(request=request, **kw)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    yield seen


def test_a_run_is_read_without_solving_dependencies(
    auth_client: TestClient, database_url: str, solves: list[str]
) -> None:
    token = issue_token(database_url, unique_owner("fast"))
    run = auth_client.post("/runs", json=run_spec(), headers=bearer(token)).json()
    solves.clear()
    fetched = auth_client.get(f"/runs/{run['id']}", headers=bearer(token))
    assert fetched.status_code == 200 and fetched.json()["id"] == run["id"]
    assert fetched.json()["progress"]["trials_total"] == 2
    assert solves == []  # the shortcut answered
    assert auth_client.get("/runs", headers=bearer(token)).status_code == 200
    assert solves == ["/runs"]  # other reads: FastAPI as usual


def test_the_shortcut_still_checks_the_caller_and_the_owner(
    auth_client: TestClient, database_url: str
) -> None:
    alice, bob = (issue_token(database_url, unique_owner(n)) for n in ("alice", "bob"))
    run_id = auth_client.post("/runs", json=run_spec(), headers=bearer(alice)).json()["id"]
    missing = auth_client.get(f"/runs/{run_id}")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    bad = auth_client.get(f"/runs/{run_id}", headers=bearer("cer_0123456789ab_nope"))
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
    other = auth_client.get(f"/runs/{run_id}", headers=bearer(bob))
    assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"
    assert auth_client.get(f"/runs/{uuid.uuid4()}", headers=bearer(alice)).status_code == 404
    invalid = auth_client.get("/runs/not-a-uuid", headers=bearer(alice))
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "run_id"
    # Not canonical, but a UUID FastAPI accepts: its own handler answers, as before.
    hexed = auth_client.get(f"/runs/{uuid.UUID(run_id).hex}", headers=bearer(alice))
    assert hexed.status_code == 200 and hexed.json()["id"] == run_id


RAN: list[str] = []


async def also(request: Request) -> None:
    RAN.append(request.url.path)


async def some_owner() -> str:
    return "someone"


async def thing_endpoint(
    run_id: uuid.UUID, request: Request, owner: Annotated[str, Depends(some_owner)]
) -> Response:
    return Response(f"{run_id} {owner}")


def test_any_other_dependency_turns_the_shortcut_off() -> None:
    router = APIRouter()
    router.add_api_route(
        "/things/{run_id}", thing_endpoint, methods=["GET"], route_class_override=CallerOnlyRoute
    )
    app = FastAPI()
    app.include_router(router, dependencies=[Depends(also)])
    thing = uuid.uuid4()
    answer = TestClient(app).get(f"/things/{thing}")
    assert answer.status_code == 200 and answer.text == f"{thing} someone"
    assert [f"/things/{thing}"] == RAN  # FastAPI's own handler ran every dependency


def test_dependency_overrides_are_honoured(auth_client: TestClient) -> None:
    app: FastAPI = auth_client.app  # type: ignore[assignment]

    async def nobody() -> Principal:
        return Principal(owner="nobody")

    app.dependency_overrides[get_principal] = nobody
    try:
        assert auth_client.get(f"/runs/{uuid.uuid4()}").status_code == 404  # no token needed
    finally:
        app.dependency_overrides.clear()
