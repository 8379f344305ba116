"""POST /events/tickets: a short-lived, single-use ticket that opens one event stream.

For browsers: `EventSource` cannot send the Authorization header, and the token itself must
not go into a URL. Only a bearer token issues tickets (a ticket cannot beget another).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from app.api.deps import OwnerDep, PrincipalDep, SessionDep, get_stream_tickets
from app.api.json_body import JsonBodyRoute
from app.api.routes.runs import PROBLEMS, load_run
from app.auth.tickets import StreamTickets
from app.schemas.tickets import TicketOut, TicketRequest

router = APIRouter(prefix="/events", tags=["events"], route_class=JsonBodyRoute)


@router.post(
    "/tickets",
    status_code=status.HTTP_201_CREATED,
    response_model=TicketOut,
    responses={404: PROBLEMS[404], 422: PROBLEMS[422]},
)
async def create_ticket(
    session: SessionDep,
    principal: PrincipalDep,
    owner: OwnerDep,
    tickets: Annotated[StreamTickets, Depends(get_stream_tickets)],
    body: TicketRequest | None = None,
) -> TicketOut:
    """A ticket for `?ticket=` on `/events/stream` or `/runs/{id}/events/stream`.

    Valid once, for `CEREBROS_STREAM_TICKET_SECONDS` (60), as the token's owner; with
    `run_id`, only for that run's stream. It works on the API process that issued it.
    """
    run_id = body.run_id if body is not None else None
    if run_id is not None:
        await load_run(session, run_id, owner)  # 404 unless the caller may read the run
    ticket = tickets.issue(principal, run_id)
    return TicketOut(ticket=ticket, expires_in=tickets.ttl_s, run_id=run_id)
