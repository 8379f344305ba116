"""`cerebros run SPEC [--local]`: run a search and show its progress until it ends.

Without --local it is `submit --watch` on the API. With --local the same saga runs in this
process, without the API or the queue, and is still recorded in the database (run row with
no job, trials, events), so `cerebros runs` and the event streams show it like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import uuid
from typing import Annotated

import psycopg
import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.tokens import LOCAL_OWNER
from app.cli.client import (
    DEFAULT_URL,
    SpecArg,
    TokenOpt,
    UrlOpt,
    console,
    print_outcome,
    read_spec,
    watch_run,
)
from app.cli.db import display_url, use_database
from app.cli.errors import CliError
from app.cli.watch import Watch, progress_bars
from app.client import CerebrosClient
from app.config import Settings, get_settings
from app.db.models import Run
from app.db.urls import libpq_url
from app.errors import Conflict
from app.events import store as event_sql
from app.events.names import EVENTS_CHANNEL
from app.pipeline.errors import RunFailed
from app.runs import repository
from app.runs import trials as trial_rows
from app.runs.progress import trial_list
from app.runs.submit import RUN_ID_TAKEN, create_local_run
from app.schemas.runs import EventOut, LiveEventOut, RunCreate, RunOut
from app.schemas.trials import TrialList

log = logging.getLogger(__name__)

POLL_S = 0.2
DRAIN_S = 10.0  # after the run ended, how long events held back by others may take


def run(
    spec_file: SpecArg,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Run it in this process (no API, no worker), still recorded in the database.",
        ),
    ] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Run a NAS search and follow it with progress bars until it ends."""
    spec = read_spec(spec_file)
    if not local:
        with CerebrosClient(url, token=token or None) as client:
            submitted = client.submit(spec)
            console.print(f"run {submitted.id} {submitted.status}")
            final = watch_run(client, submitted, url)
    else:
        try:
            body = RunCreate.model_validate(spec)
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise CliError(f"{spec_file}: {fields}", code=2) from None
        final = run_local(body, get_settings())
    if final.status != "succeeded":
        raise typer.Exit(code=1)


def run_local(body: RunCreate, settings: Settings) -> RunOut:
    """Record the run, execute its saga here with progress bars, print the outcome."""
    from app.db.migrate import upgrade

    # Warnings only: the bars are the output. The Keras engine is imported before the
    # loop starts, not inside the run (it would block the progress display for seconds).
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    url = use_database(settings)
    upgrade(url)
    import app.nas.engine  # noqa: F401

    console.print(f"database: {display_url(url)}")
    final, trials = asyncio.run(_execute(url, get_settings(), body))
    print_outcome(final, trials)
    return final


async def _create_run(sessions: async_sessionmaker[AsyncSession], body: RunCreate) -> Run:
    try:
        return await create_local_run(sessions, body, owner=LOCAL_OWNER)
    except Conflict as exc:
        raise CliError(RUN_ID_TAKEN, code=2) from exc


async def _execute(url: str, settings: Settings, body: RunCreate) -> tuple[RunOut, TrialList]:
    from app.pipeline.job import execute_run_job
    from app.queue.app import create_queue_app
    from app.runtime import create_runtime

    resources = create_runtime(settings, url, create_queue_app(url, settings), pool_size=4)
    try:
        run = await _create_run(resources.sessions, body)
        console.print(f"run {run.id} running here (--local)")
        job = asyncio.create_task(execute_run_job(resources, run.id, final_attempt=True))
        _cancel_on_ctrl_c(url, settings, resources.sessions, run.id)
        with progress_bars(console) as progress:
            view = Watch(RunOut.model_validate(run, from_attributes=True), progress)
            live = asyncio.create_task(_live_epochs(url, run.id, view))
            try:
                await _follow(resources.sessions, run.id, view, job)
            finally:
                live.cancel()
        with contextlib.suppress(RunFailed):  # recorded on the run, shown below
            await job
        async with resources.sessions() as session:
            final = await repository.get_run(session, run.id)
            assert final is not None
            return RunOut.model_validate(final, from_attributes=True), await _ranked(session, final)
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
        await resources.close()


async def _follow(
    sessions: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    view: Watch,
    job: asyncio.Task[None],
) -> None:
    """Feed the run's events to the display, in stream order.

    Runs until the run has ended and every event it wrote was shown.
    """
    position = event_sql.STREAM_START
    ended_at: float | None = None
    loop = asyncio.get_running_loop()
    while True:
        ended = job.done()  # sampled before the read: what it wrote is committed by now
        async with sessions() as session:
            page = await event_sql.released_events(
                session, after=position, limit=500, run_id=run_id
            )
        for event, _ in page.rows:
            view.on_event(EventOut.model_validate(event, from_attributes=True))
        position = page.last or position
        if ended and not page.full:
            ended_at = ended_at or loop.time()
            # Events of ours wait only behind other sessions' older open transactions.
            if not page.held_back or loop.time() - ended_at > DRAIN_S:
                return
        if not page.full:
            await asyncio.sleep(POLL_S)


async def _live_epochs(url: str, run_id: uuid.UUID, view: Watch) -> None:
    """Feed the run's live-only notifications (epoch progress, never stored) to the display."""
    try:
        async with await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True) as conn:
            await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
            async for note in conn.notifies():
                body = json.loads(note.payload)
                if body.get("live") and body.get("run_id") == str(run_id):
                    view.on_event(LiveEventOut.model_validate(body))
    except (psycopg.Error, ValueError):
        return  # progress only: the run and its durable events are unaffected


def _cancel_on_ctrl_c(
    url: str, settings: Settings, sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID
) -> None:
    """Ctrl+C cancels the run the way `cerebros cancel` would; a second Ctrl+C quits at once.

    The cancelled run stops within an epoch and is undone; quitting at once leaves the run
    `running` in the database.
    """
    from app.queue.app import create_queue_app
    from app.runs.cancel import cancel_run

    loop = asyncio.get_running_loop()
    pressed: list[asyncio.Task[Run]] = []

    def on_sigint() -> None:
        if pressed:
            console.print(f"quit: run {run_id} is left 'running' in the database")
            # Not SystemExit: the interpreter would wait for the training thread to end.
            os._exit(130)
        console.print(f"cancelling run {run_id} (stops within an epoch; Ctrl+C again quits)")
        queue = create_queue_app(url, settings)  # never opened: a local run has no job
        pressed.append(loop.create_task(cancel_run(sessions, queue, run_id, owner=None)))

    loop.add_signal_handler(signal.SIGINT, on_sigint)


async def _ranked(session: AsyncSession, run: Run) -> TrialList:
    """The run's trials best first, as `GET /runs/{id}/trials?sort=score` gives them."""
    return trial_list(run, await trial_rows.list_trials(session, run.id), best_first=True)


def register(cli: typer.Typer) -> None:
    cli.command()(run)
