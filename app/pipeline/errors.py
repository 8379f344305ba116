"""How a run's job ended for the queue."""

from __future__ import annotations

from app.errors import CerebrosError


class RunFailed(CerebrosError):
    """The run ended failed (its reason is stored on the run); the job must not retry."""
