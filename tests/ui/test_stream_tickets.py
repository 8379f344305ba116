"""Stream tickets: what a browser's EventSource opens streams with instead of the token.

The store's rules in isolation, then against the real API process: a ticket opens one
stream, once, before it expires, for its run (or any, unbound), as its token's owner; it
opens nothing else, and the access log never shows it.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import httpx
import pytest

from app.auth.tickets import TICKET_PREFIX, StreamTickets
from app.auth.tokens import Principal
from tests.ui.conftest import Service, create_token

ALICE = Principal(owner="alice", token_id="0123456789ab")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_ticket_opens_one_stream_once() -> None:
    tickets = StreamTickets(60)
    ticket = tickets.issue(ALICE)
    assert ticket.startswith(TICKET_PREFIX) and len(ticket) > 40
    assert tickets.redeem(ticket, None) == ALICE
    assert tickets.redeem(ticket, None) is None  # used up
    assert len(tickets) == 0


def test_only_a_digest_is_kept() -> None:
    tickets = StreamTickets(60)
    ticket = tickets.issue(ALICE)
    secret = ticket.removeprefix(TICKET_PREFIX)
    assert not any(secret in key or ticket in key for key in tickets._tickets)


def test_a_ticket_expires() -> None:
    clock = Clock()
    tickets = StreamTickets(60, clock=clock)
    ticket = tickets.issue(ALICE)
    clock.now += 60
    assert tickets.redeem(ticket, None) is None
    stale = tickets.issue(ALICE)
    clock.now += 61
    tickets.issue(ALICE)  # issuing drops what expired
    assert len(tickets) == 1
    assert tickets.redeem(stale, None) is None


def test_a_run_bound_ticket_opens_only_that_runs_stream() -> None:
    tickets = StreamTickets(60)
    run, other = uuid.uuid4(), uuid.uuid4()
    assert tickets.redeem(tickets.issue(ALICE, run), run) == ALICE
    assert tickets.redeem(tickets.issue(ALICE, run), other) is None
    assert tickets.redeem(tickets.issue(ALICE, run), None) is None  # not the global stream
    assert tickets.redeem(tickets.issue(ALICE), other) == ALICE  # unbound: any stream


def test_a_presented_ticket_is_used_up_even_when_refused() -> None:
    tickets = StreamTickets(60)
    run = uuid.uuid4()
    ticket = tickets.issue(ALICE, run)
    assert tickets.redeem(ticket, uuid.uuid4()) is None
    assert tickets.redeem(ticket, run) is None


def test_outstanding_tickets_are_bounded_per_owner() -> None:
    tickets = StreamTickets(60, max_per_owner=3)
    bob = Principal(owner="bob", token_id="ba9876543210")
    bobs = tickets.issue(bob)
    first, *rest = [tickets.issue(ALICE) for _ in range(4)]
    assert len(tickets) == 4  # alice's 3 newest and bob's one
    assert tickets.redeem(first, None) is None  # alice's oldest made room
    assert all(tickets.redeem(t, None) == ALICE for t in rest)
    assert tickets.redeem(bobs, None) == bob  # one owner never voids another's


@pytest.mark.parametrize("junk", ["", "cst_", "nope", "cst_" + "a" * 200, "cer_0123456789ab_x"])
def test_junk_is_refused(junk: str) -> None:
    assert StreamTickets(60).redeem(junk, None) is None


# --- against the real API ------------------------------------------------------------------


def ticket_for(service: Service, token: str | None = None, **body: str) -> str:
    headers = {"Authorization": f"Bearer {token or service.token}"}
    answer = httpx.post(f"{service.base}/events/tickets", json=body, headers=headers, timeout=10)
    assert answer.status_code == 201, answer.text
    payload = answer.json()
    assert payload["expires_in"] == 60
    ticket: str = payload["ticket"]
    return ticket


def open_status(service: Service, path: str, **params: str) -> int:
    """The status a stream answers with (200: it opened; closed at once)."""
    with (
        httpx.Client(base_url=service.base, timeout=10) as client,
        client.stream("GET", path, params=params) as answer,
    ):
        return answer.status_code


def submit(service: Service, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token or service.token}"}
    spec = {"dataset_id": "iris", "search_space": {"layers": [1], "neurons": [4]},
            "budget": {"max_trials": 1}, "parameters": {"epochs": 1}}  # fmt: skip
    answer = httpx.post(f"{service.base}/runs", json=spec, headers=headers, timeout=30)
    assert answer.status_code == 202, answer.text
    run_id: str = answer.json()["id"]
    return run_id


@pytest.mark.slow
def test_streams_open_with_a_ticket_once(service: Service) -> None:
    ticket = ticket_for(service)
    assert open_status(service, "/events/stream", ticket=ticket) == 200
    assert open_status(service, "/events/stream", ticket=ticket) == 401  # single use
    assert open_status(service, "/events/stream") == 401  # neither header nor ticket
    assert open_status(service, "/events/stream", ticket="cst_forged") == 401


@pytest.mark.slow
def test_a_run_bound_ticket_opens_only_its_run(service: Service) -> None:
    run_id, other = submit(service), submit(service)
    for path, status in [
        (f"/runs/{run_id}/events/stream", 200),
        (f"/runs/{other}/events/stream", 401),
        ("/events/stream", 401),
    ]:
        assert open_status(service, path, ticket=ticket_for(service, run_id=run_id)) == status


@pytest.mark.slow
def test_a_ticket_is_bound_to_its_owner(service: Service) -> None:
    mallory = create_token(service.env, f"mallory-{uuid.uuid4().hex[:6]}")
    run_id = submit(service)  # the admin's run
    answer = httpx.post(
        f"{service.base}/events/tickets",
        json={"run_id": run_id},
        headers={"Authorization": f"Bearer {mallory}"},
        timeout=10,
    )
    assert answer.status_code == 404  # not hers: not even a ticket
    ticket = ticket_for(service, mallory)
    assert open_status(service, f"/runs/{run_id}/events/stream", ticket=ticket) == 404


@pytest.mark.slow
def test_a_ticket_opens_streams_only(service: Service) -> None:
    ticket = ticket_for(service)
    answer = httpx.get(f"{service.base}/runs", params={"ticket": ticket}, timeout=10)
    assert answer.status_code == 401
    # ...and a ticket cannot be traded for another.
    answer = httpx.post(f"{service.base}/events/tickets", params={"ticket": ticket}, timeout=10)
    assert answer.status_code == 401
    assert open_status(service, "/events/stream", ticket=ticket) == 200  # still unused


@pytest.mark.slow
def test_a_revoked_tokens_tickets_are_refused(service: Service) -> None:
    token = create_token(service.env, f"revoked-{uuid.uuid4().hex[:6]}")
    ticket = ticket_for(service, token)
    subprocess.run(
        [sys.executable, "-m", "app.cli", "token", "revoke", token.split("_")[1]],
        env=service.env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert open_status(service, "/events/stream", ticket=ticket) == 401


@pytest.mark.slow
def test_the_access_log_never_shows_a_ticket(service: Service) -> None:
    ticket = ticket_for(service)
    assert open_status(service, "/events/stream", ticket=ticket) == 200
    log = service.log_dir / "api.log"
    deadline = time.monotonic() + 5
    while "ticket=***" not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_text(errors="replace")
    assert "ticket=***" in text
    assert ticket not in text and ticket.removeprefix("cst_") not in text
