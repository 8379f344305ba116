"""Moved to `app.saga.models`: the saga package owns its tables. Kept for old imports only."""

from app.saga.models import SagaRow, SagaStepRow
from app.saga.store import SAGA_STATUSES, STEP_STATES

__all__ = ["SAGA_STATUSES", "STEP_STATES", "SagaRow", "SagaStepRow"]
