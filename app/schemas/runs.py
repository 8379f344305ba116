"""Request and response models of /runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.db.models import RunStatus
from app.nas.spec import NasSpec


class RunCreate(NasSpec):
    """A NAS run request: the NAS spec plus an optional client-chosen run id."""

    # Lax for this one field only: strict would want a uuid.UUID object, and JSON has strings.
    run_id: uuid.UUID | None = Field(
        default=None, strict=False, description="Client-chosen id; generated (UUID4) when absent."
    )


class RunProgress(BaseModel):
    trials_done: int = 0
    trials_total: int = 0
    best_score: float | None = None
    current_step: str | None = None


class RunOut(BaseModel):
    id: uuid.UUID
    owner: str
    status: RunStatus
    spec: dict[str, Any]
    current_step: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    job_id: int | None = None
    progress: RunProgress | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RunPage(BaseModel):
    items: list[RunOut]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next (older) page."
    )


class EventOut(BaseModel):
    id: int
    run_id: uuid.UUID
    name: str
    payload: dict[str, Any]
    correlation_id: str | None = None
    created_at: datetime


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int | None = Field(default=None, description="Pass as `after` to continue.")
