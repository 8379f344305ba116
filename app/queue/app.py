"""The procrastinate App, built for one database URL."""

from __future__ import annotations

import procrastinate

from app.db.urls import libpq_url
from app.queue.tasks import tasks

# The Blueprint registers its tasks under the "cerebros" namespace.
RUN_NAS_TASK = "cerebros:run_nas"


def create_queue_app(database_url: str) -> procrastinate.App:
    """An App whose connector points at `database_url`, with the service's tasks."""
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=libpq_url(database_url)),
    )
    app.add_tasks_from(tasks, namespace="cerebros")
    return app
