"""Submit a run: the run row and its procrastinate job in one transaction, idempotently."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import procrastinate
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.datasets.service import lock_run_dataset, resolve_run_dataset
from app.db.errors import translate_driver_errors
from app.db.models import Run, RunStatus
from app.errors import Conflict, InvalidInput, TooManyRuns
from app.queue.app import RUN_NAS_TASK
from app.runs import repository
from app.runs.trial_jobs import run_lock_name
from app.schemas.runs import RunCreate

#: The answer to a client-chosen run_id that is taken, whoever's run has it: the same words
#: for one's own run and another owner's, so it never tells whose (or that another owner exists).
RUN_ID_TAKEN = "run_id is not available; choose another, or omit it to let the service choose"


def request_hash(spec: dict[str, Any]) -> str:
    """Hash of the validated request, so equal bodies match whatever their key order."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def submit_run(
    sessions: async_sessionmaker[AsyncSession],
    queue: procrastinate.App,
    body: RunCreate,
    *,
    owner: str,
    queue_name: str,
    idempotency_key: str | None = None,
    max_active_runs: int | None = None,
) -> tuple[Run, bool]:
    """Store the run and enqueue its job atomically; return (run, created).

    With an Idempotency-Key, a repeat of the same body returns the first run (created=False)
    and a different body is a Conflict; no second job is ever enqueued. With
    `max_active_runs`, an owner who already has that many queued + running runs gets
    TooManyRuns (a replay is still answered). A blank key is InvalidInput: stored, it would
    make every later blank key of the owner a replay or a conflict.
    """
    if idempotency_key is not None and not idempotency_key.strip():
        raise InvalidInput(
            "Idempotency-Key is blank; send a non-blank key, or no header",
            field="Idempotency-Key",
        )
    body = await resolve_run_dataset(sessions, body, owner)  # an uploaded one: owner's, task
    spec = body.model_dump(mode="json", exclude={"run_id"})
    digest = request_hash({**spec, "run_id": str(body.run_id) if body.run_id else None})
    if idempotency_key is not None:
        async with sessions() as session:
            existing = await repository.find_by_idempotency_key(session, owner, idempotency_key)
        if existing is not None:
            return _replay(existing, digest), False
    try:
        return await _insert_with_job(
            sessions,
            queue,
            spec,
            body,
            owner,
            queue_name,
            idempotency_key,
            digest,
            max_active_runs,
        ), True
    except IntegrityError as exc:
        # Lost a race with a concurrent request with the same key (replay or conflict), or
        # the client's run_id is taken.
        if idempotency_key is not None:
            async with sessions() as session:
                existing = await repository.find_by_idempotency_key(session, owner, idempotency_key)
            if existing is not None:
                return _replay(existing, digest), False
        if body.run_id is None:
            raise  # not the client's doing: a generated id cannot collide in practice
        raise Conflict(RUN_ID_TAKEN, field="run_id") from exc


async def create_local_run(
    sessions: async_sessionmaker[AsyncSession], body: RunCreate, *, owner: str
) -> Run:
    """A run this process executes itself (`cerebros run --local`).

    It is the row `submit_run` stores, with no queue job (job_id NULL), so it still shows in
    lists and streams.
    """
    body = await resolve_run_dataset(sessions, body, owner)
    spec = body.model_dump(mode="json", exclude={"run_id"})
    digest = request_hash({**spec, "run_id": str(body.run_id) if body.run_id else None})
    run = Run(
        id=body.run_id or uuid.uuid4(),
        owner=owner,
        status=RunStatus.QUEUED,
        spec=spec,
        request_hash=digest,
    )
    try:
        async with sessions.begin() as session:
            await check_warm_start(session, body, owner)
            session.add(run)
    except IntegrityError as exc:
        raise Conflict(RUN_ID_TAKEN, field="run_id") from exc
    return run


async def check_warm_start(session: AsyncSession, body: RunCreate, owner: str) -> None:
    """``parameters.warm_start_run_id`` names a run of the same owner and dataset."""
    warm = body.parameters.warm_start_run_id
    if warm is None:
        return
    run = await repository.get_run(session, uuid.UUID(warm), owner)
    if run is None or run.spec.get("dataset_id") != body.dataset_id:
        raise InvalidInput(
            "warm_start_run_id must name one of your runs on the same dataset",
            field="parameters.warm_start_run_id",
        )


def _replay(existing: Run, digest: str) -> Run:
    if existing.request_hash != digest:
        raise Conflict(
            "Idempotency-Key was already used with a different request body",
            field="Idempotency-Key",
        )
    return existing


async def _insert_with_job(
    sessions: async_sessionmaker[AsyncSession],
    queue: procrastinate.App,
    spec: dict[str, Any],
    body: RunCreate,
    owner: str,
    queue_name: str,
    idempotency_key: str | None,
    digest: str,
    max_active_runs: int | None = None,
) -> Run:
    run_id = body.run_id or uuid.uuid4()
    async with sessions() as session, session.begin():
        if max_active_runs is not None:
            await _check_active_runs(session, owner, max_active_runs)
        await lock_run_dataset(session, body.dataset_id, owner)  # a delete waits for us
        await check_warm_start(session, body, owner)
        run = Run(
            id=run_id,
            owner=owner,
            status=RunStatus.QUEUED,
            spec=spec,
            idempotency_key=idempotency_key,
            request_hash=digest,
        )
        session.add(run)
        await session.flush()
        run.job_id = await _defer_in_transaction(session, queue, run_id, queue_name)
    return run


async def _check_active_runs(session: AsyncSession, owner: str, limit: int) -> None:
    # The owner's advisory lock (held to commit) serializes their submissions, so concurrent
    # requests cannot all see "limit - 1" and all insert.
    await repository.lock_owner(session, owner)
    active = await repository.count_active_runs(session, owner)
    if active >= limit:
        raise TooManyRuns(
            f"owner {owner!r} already has {active} queued or running runs; the limit "
            f"(CEREBROS_MAX_QUEUED_RUNS_PER_OWNER) is {limit}",
            field="owner",
        )


async def _defer_in_transaction(
    session: AsyncSession, queue: procrastinate.App, run_id: uuid.UUID, queue_name: str
) -> int:
    # procrastinate inserts the job on our own connection, inside our transaction: if the
    # run insert or the commit fails, the job disappears with it.
    raw = await (await session.connection()).get_raw_connection()
    deferrer = queue.configure_task(
        RUN_NAS_TASK,
        allow_unknown=False,
        queue=queue_name,
        lock=run_lock_name(run_id),  # the run's later jobs (its advances) take turns with it
        connection=raw.driver_connection,
    )
    with translate_driver_errors():  # procrastinate's errors, on a connection of ours
        return await deferrer.defer_async(run_id=str(run_id))
