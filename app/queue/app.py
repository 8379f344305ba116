"""The procrastinate App, built for one database URL."""

from __future__ import annotations

import procrastinate

from app.config import Settings, get_settings
from app.db.urls import libpq_url
from app.queue.connector import ResilientPsycopgConnector
from app.queue.tasks import register_tasks
from app.runs.trial_jobs import RUN_NAS_TASK

__all__ = ["RUN_NAS_TASK", "create_queue_app"]


def create_queue_app(database_url: str, settings: Settings | None = None) -> procrastinate.App:
    """An App whose connector points at `database_url`, with the service's tasks."""
    app = procrastinate.App(
        connector=ResilientPsycopgConnector(conninfo=libpq_url(database_url)),
    )
    register_tasks(app, settings or get_settings())
    return app
