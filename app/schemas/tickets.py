"""Request and response models of POST /events/tickets."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from app.nas.spec import STRICT


class TicketRequest(BaseModel):
    model_config = STRICT

    # Lax for this one field only: JSON has strings, strict would want a uuid.UUID.
    run_id: uuid.UUID | None = Field(
        default=None,
        strict=False,
        description="Only this run's stream may be opened with the ticket (default: any "
        "stream the caller may read, the global one included).",
    )


class TicketOut(BaseModel):
    ticket: str = Field(description="Pass as `?ticket=` to one event stream; single use.")
    expires_in: float = Field(description="Seconds left to open the stream with it.")
    run_id: uuid.UUID | None = None
