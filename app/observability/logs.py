"""Log lines as text or JSON, carrying the run, trial, job and worker they are about.

`CEREBROS_LOG_FORMAT=json` writes one JSON object per record (`ts`, `level`, `logger`,
`message`, then `run_id`, `trial`, `job_id`, `worker` where they apply, `exc_info` for a
traceback). Those fields come from context variables: the worker binds the worker's name for
the whole process and a job's id and run id while it runs (`bind_job_context`, a procrastinate
worker middleware); the progress reporter sets the trial number in the search thread. Records
of procrastinate's own job lines carry the job in their `extra`, which fills the same fields.

One `logging_config` dict serves `logging.config.dictConfig` and uvicorn's `log_config`, so
uvicorn's access and error lines come out in the same format as everything else (the
access logger keeps its own filters, such as the stream-ticket mask of app/auth/http.py).
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import json
import logging
import logging.config
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from procrastinate import JobContext
    from procrastinate.middleware import AsyncCallNext
    from procrastinate.worker import Worker


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


T = TypeVar("T")

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOGGER: Final = "uvicorn.access"

_run_id: ContextVar[str | None] = ContextVar("cerebros_log_run_id", default=None)
_trial: ContextVar[int | None] = ContextVar("cerebros_log_trial", default=None)
_job_id: ContextVar[int | None] = ContextVar("cerebros_log_job_id", default=None)
_worker: ContextVar[str | None] = ContextVar("cerebros_log_worker", default=None)


@contextlib.contextmanager
def log_context(
    *,
    run_id: str | None = None,
    job_id: int | None = None,
    worker: str | None = None,
) -> Iterator[None]:
    """Put the given fields on every record logged inside the block (in this context)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(_bound(_run_id, run_id))
        stack.enter_context(_bound(_job_id, job_id))
        stack.enter_context(_bound(_worker, worker))
        yield


@contextlib.contextmanager
def _bound(var: ContextVar[T | None], value: T | None) -> Iterator[None]:
    if value is None:  # leave what an outer block bound
        yield
        return
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def bind_worker(name: str) -> None:
    """Name the worker on every record of this context and the tasks and threads it starts."""
    _worker.set(name)


def set_trial(number: int | None) -> None:
    """The trial the calling thread trains now (None: none).

    The search runs in a thread of its own (`asyncio.to_thread` copies the job's context into
    it), so this reaches the trial's log lines and nothing else.
    """
    _trial.set(number)


async def bind_job_context(call_next: AsyncCallNext, context: JobContext, worker: Worker) -> Any:
    """Procrastinate worker middleware: the job's id and run id on the records of its run."""
    run_id = context.job.task_kwargs.get("run_id")
    with log_context(run_id=None if run_id is None else str(run_id), job_id=context.job.id):
        return await call_next()


def context_fields(record: logging.LogRecord) -> dict[str, Any]:
    """`run_id`, `trial`, `job_id`, `worker` for `record`.

    Taken from the context variables, else from what procrastinate put in the record's `extra`
    (its `job` and `worker` dicts).
    """
    job = getattr(record, "job", None)
    job = job if isinstance(job, dict) else {}
    worker = getattr(record, "worker", None)
    worker = worker if isinstance(worker, dict) else {}
    kwargs = job.get("task_kwargs")
    fields = {
        "run_id": _run_id.get() or (kwargs.get("run_id") if isinstance(kwargs, dict) else None),
        "trial": _trial.get(),
        "job_id": _job_id.get() or job.get("id") or worker.get("job_id"),
        "worker": _worker.get() or worker.get("name"),
    }
    return {name: value for name, value in fields.items() if value is not None}


def access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The request of one uvicorn access line: client, method, path, http_version, status."""
    if record.name != ACCESS_LOGGER or not isinstance(record.args, tuple) or len(record.args) != 5:
        return {}
    client, method, path, version, status = record.args
    return {
        "client": client,
        "method": method,
        "path": path,
        "http_version": version,
        "status": status,
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(context_fields(record))
        entry.update(access_fields(record))
        action = getattr(record, "action", None)  # procrastinate's name for the event
        if isinstance(action, str):
            entry["action"] = action
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(log_format: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """A `dictConfig` dict: one stderr handler on the root logger in `log_format`.

    Uvicorn's loggers hand their records to it instead of printing their own way.
    """
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if log_format is LogFormat.JSON else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"cerebros": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "cerebros",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", ACCESS_LOGGER)
        },
    }


def configure_logging(log_format: LogFormat, level: str = "INFO") -> None:
    """Apply `logging_config`; warnings and (in JSON) uncaught exceptions become records."""
    logging.config.dictConfig(logging_config(log_format, level))
    logging.captureWarnings(True)
    if log_format is LogFormat.JSON:
        sys.excepthook = _log_uncaught


def _log_uncaught(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("cerebros").critical("uncaught exception", exc_info=(kind, value, traceback))
