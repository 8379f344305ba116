"""Log records as JSON lines: base fields, the run/trial/job/worker context, tracebacks,
uvicorn's access lines; the text format as it was."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from types import SimpleNamespace
from typing import Any, cast

from app.observability.logs import (
    JsonFormatter,
    LogFormat,
    bind_job_context,
    context_fields,
    log_context,
    logging_config,
    set_trial,
)


def capture(log: Any) -> list[dict[str, Any]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("obs.test")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        log(logger)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_a_record_is_one_json_line_with_the_base_fields() -> None:
    [entry] = capture(lambda log: log.warning("two\nlines %s", "and an arg"))
    assert entry["message"] == "two\nlines and an arg"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "obs.test"
    assert entry["ts"].endswith("+00:00") and "T" in entry["ts"]
    # No context here: the fields are left out, not null.
    assert not {"run_id", "trial", "job_id", "worker", "exc_info"} & entry.keys()


def test_the_context_reaches_records_in_the_block_and_in_threads_it_starts() -> None:
    def log_from_a_search_thread(log: logging.Logger) -> None:
        set_trial(3)
        log.info("training")
        set_trial(None)
        log.info("between trials")

    async def job(log: logging.Logger) -> None:
        with log_context(run_id="r-1", job_id=7):
            log.info("in the job")
            await asyncio.to_thread(log_from_a_search_thread, log)
        log.info("after the job")

    def run(log: logging.Logger) -> None:
        with log_context(worker="host:1"):
            asyncio.run(job(log))

    in_job, training, between, after = capture(run)
    assert (in_job["run_id"], in_job["job_id"], in_job["worker"]) == ("r-1", 7, "host:1")
    assert "trial" not in in_job
    assert (training["run_id"], training["job_id"], training["trial"]) == ("r-1", 7, 3)
    assert "trial" not in between and between["job_id"] == 7
    assert after["worker"] == "host:1" and "run_id" not in after and "job_id" not in after


def test_procrastinate_job_lines_carry_the_job_from_their_extra() -> None:
    extra = {
        "action": "start_job",
        "worker": {"name": "worker", "worker_id": 4, "job_id": 12, "queues": ["ml"]},
        "job": {"id": 12, "task_kwargs": {"run_id": "abc"}, "task_name": "cerebros.run_nas"},
    }
    [entry] = capture(lambda log: log.info("Starting job", extra=extra))
    assert (entry["job_id"], entry["run_id"], entry["action"]) == (12, "abc", "start_job")
    assert entry["worker"] == "worker"
    # The process's own worker name wins over procrastinate's generic one.
    bound = capture(lambda log: _with_worker("host:9", lambda: log.info("x", extra=extra)))
    assert bound[0]["worker"] == "host:9"


def _with_worker(name: str, call: Any) -> None:
    with log_context(worker=name):
        call()


def test_a_traceback_is_one_field() -> None:
    def log(logger: logging.Logger) -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")

    [entry] = capture(log)
    assert entry["message"] == "failed"
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert entry["exc_info"].rstrip().endswith("ValueError: boom")


def test_uvicorn_access_lines_have_the_request_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("uvicorn.access")
    access.addHandler(handler)
    try:
        access.warning('%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", "/runs?x=1", "1.1", 404)
    finally:
        access.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["message"] == '1.2.3.4:5 - "GET /runs?x=1 HTTP/1.1" 404'
    assert {k: entry[k] for k in ("client", "method", "path", "http_version", "status")} == {
        "client": "1.2.3.4:5",
        "method": "GET",
        "path": "/runs?x=1",
        "http_version": "1.1",
        "status": 404,
    }


async def test_the_worker_middleware_binds_the_job_and_its_run() -> None:
    seen: list[dict[str, Any]] = []

    async def call_next() -> str:
        record = logging.LogRecord("obs.test", logging.INFO, __file__, 1, "m", None, None)
        seen.append(context_fields(record))
        return "result"

    context = SimpleNamespace(job=SimpleNamespace(id=41, task_kwargs={"run_id": "run-9"}))
    result = await bind_job_context(call_next, cast(Any, context), cast(Any, None))
    assert result == "result"
    assert seen == [{"run_id": "run-9", "job_id": 41}]


def test_the_text_format_is_the_one_before() -> None:
    config = logging_config(LogFormat.TEXT)
    assert config["formatters"]["cerebros"] == {
        "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"
    }
    assert config["root"]["level"] == "INFO"


def test_configured_json_process_writes_only_json_lines() -> None:
    """Warnings, uvicorn's loggers and an uncaught exception come out as JSON too."""
    code = (
        "import logging, warnings\n"
        "from app.observability.logs import LogFormat, configure_logging, bind_worker\n"
        "configure_logging(LogFormat.JSON, 'debug')\n"
        "bind_worker('w:1')\n"
        "logging.getLogger('uvicorn.error').info('Started server process')\n"
        "warnings.warn('careful')\n"
        "raise RuntimeError('uncaught')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stdout == ""
    entries = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(e["logger"], e["level"]) for e in entries] == [
        ("uvicorn.error", "INFO"),
        ("py.warnings", "WARNING"),
        ("cerebros", "CRITICAL"),
    ]
    assert all(e["worker"] == "w:1" for e in entries)
    assert "RuntimeError: uncaught" in entries[-1]["exc_info"]
