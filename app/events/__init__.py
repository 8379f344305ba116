"""Run events: published as rows (+ NOTIFY on commit), matched by glob patterns, fanned out."""

from app.events.names import (
    RUN_CANCELLED,
    RUN_COMPLETED,
    RUN_FAILED,
    RUN_STARTED,
    TERMINAL_EVENTS,
)
from app.events.patterns import compile_pattern, matches
from app.events.publish import RunEvents
from app.events.store import publish_event

__all__ = [
    "RUN_CANCELLED",
    "RUN_COMPLETED",
    "RUN_FAILED",
    "RUN_STARTED",
    "TERMINAL_EVENTS",
    "RunEvents",
    "compile_pattern",
    "matches",
    "publish_event",
]
