"""The API's hot reads of runs and their events: one statement each, the JSON built in SQL.

`GET /runs/{id}`, `GET /runs` and `GET /runs/{id}/events` answer with the bytes these
functions return. Each is one statement on a pooled connection in autocommit mode
(`app.db.session.read_connection`: one round trip, no BEGIN or ROLLBACK, no SQLAlchemy
connection or result objects), whose row carries the response body already serialised by
Postgres (`json_build_object`), in the shape of the documented response models (`RunOut`,
`RunPage`, `EventPage`), so no ORM object or pydantic model is built per request. The
little that Python still decides (a run's objective direction, trial progress, the page
cursor) is computed from the same row and spliced in.

Timestamps are written as pydantic writes them: UTC, microseconds, `Z`. Owner scoping is
in the statement: another owner's run reads as absent (None), exactly as
`repository.get_run` does.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.models import FINISHED_TRIAL_STATUSES, RunStatus
from app.db.session import read_connection
from app.runs.repository import decode_cursor, encode_cursor_values
from app.schemas.runs import RunObjective, RunSummary, StoredSpec


def _ts(column: str) -> str:
    """`column` (timestamptz) as pydantic writes a UTC datetime (JSON null stays null).

    Six digits of fraction, none when they are all zero, then `Z`.
    """
    text = f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    return f"replace({text}, '.000000Z', 'Z')"


# RunOut.error is a RunError: a stored error missing a field reads with the field's default.
_ERROR_DEFAULTS: Final = '{"step": null, "type": "Error", "error": null, "message": "", "undo": []}'


def _run_object(r: str) -> str:
    """The JSON object of run row `r`: a `RunOut`, whose last key is `progress`, null."""
    return f"""json_build_object(
        'id', {r}.id, 'owner', {r}.owner, 'status', {r}.status, 'spec', {r}.spec,
        'current_step', {r}.current_step, 'result', {r}.result,
        'error', CASE WHEN jsonb_typeof({r}.error) = 'object'
            THEN '{_ERROR_DEFAULTS}'::jsonb || {r}.error END,
        'job_id', {r}.job_id,
        'created_at', {_ts(f"{r}.created_at")}, 'updated_at', {_ts(f"{r}.updated_at")},
        'started_at', {_ts(f"{r}.started_at")}, 'finished_at', {_ts(f"{r}.finished_at")},
        'progress', NULL)"""


# GET /runs/{id}: the run, and its trials counted by status (whatever statuses exist: a new
# one needs no change here) with the best scores, in one statement.
_RUN = f"""
SELECT {_run_object("r")}::text AS body,
       r.spec::text AS spec, r.result::text AS result, r.current_step,
       t.statuses, t.counts, t.best_max, t.best_min
FROM runs r
LEFT JOIN LATERAL (
    SELECT array_agg(g.status) AS statuses, array_agg(g.n) AS counts,
           max(g.best_max) AS best_max, min(g.best_min) AS best_min
    FROM (SELECT status, count(*) AS n, max(score) AS best_max, min(score) AS best_min
          FROM trials WHERE run_id = r.id GROUP BY status) g
) t ON true
WHERE r.id = %(id)s"""
RUN_SQL: Final = _RUN
RUN_OF_OWNER_SQL: Final = _RUN + " AND r.owner = %(owner)s"

_NULL_PROGRESS: Final = "null}"
_FINISHED: Final = frozenset(status.value for status in FINISHED_TRIAL_STATUSES)


def _json_float(value: float | None) -> str:
    return "null" if value is None or not math.isfinite(value) else json.dumps(value)


def _progress(row: tuple[Any, ...]) -> str:
    """`RunProgress` of a `_RUN` row, as JSON (what `runs.progress.run_progress` computes)."""
    _, spec_json, result_json, current_step, statuses, counts, best_max, best_min = row
    try:
        spec = StoredSpec.model_validate_json(spec_json)
    except ValidationError:
        spec = StoredSpec()
    summary = None
    if result_json is not None:
        try:
            summary = RunSummary.model_validate_json(result_json)
        except ValidationError:
            summary = None
    direction = RunObjective.of(summary, spec).direction
    by_status = zip(statuses or (), counts or (), strict=True)
    done = sum(n for status, n in by_status if status in _FINISHED)
    best = best_max if direction == "max" else best_min
    return (
        f'{{"trials_done": {done}, "trials_total": {spec.budget.max_trials}, '
        f'"best_score": {_json_float(best)}, "current_step": {json.dumps(current_step)}}}'
    )


async def run_json(engine: AsyncEngine, run_id: uuid.UUID, owner: str | None) -> bytes | None:
    """`GET /runs/{id}`'s body (`RunOut` with its progress); None: no such run for `owner`.

    Args:
        engine: The engine whose pool lends the connection.
        run_id: The run.
        owner: The caller's owner scope (None: an admin, every owner).
    """
    sql, params = (
        (RUN_SQL, {"id": run_id})
        if owner is None
        else (RUN_OF_OWNER_SQL, {"id": run_id, "owner": owner})
    )
    async with read_connection(engine) as conn:
        row = await (await conn.execute(sql, params)).fetchone()
    if row is None:
        return None
    body: str = row[0]
    # json_build_object ends the object with exactly `"progress" : null}`.
    assert body.endswith(_NULL_PROGRESS)
    return f"{body[: -len(_NULL_PROGRESS)]}{_progress(row)}}}".encode()


def _runs_sql(*, owner: bool, status: bool, cursor: bool) -> str:
    where = [
        clause
        for clause, used in (
            ("owner = %(owner)s", owner),
            ("status = %(status)s", status),
            ("(created_at, id) < (%(cursor_created)s, %(cursor_id)s)", cursor),
        )
        if used
    ]
    return f"""
SELECT coalesce(json_agg({_run_object("p")} ORDER BY p.created_at DESC, p.id DESC)
                FILTER (WHERE p.n <= %(limit)s), '[]')::text AS items,
       count(*) > %(limit)s AS more,
       max(p.created_at) FILTER (WHERE p.n = %(limit)s) AS last_created,
       (array_agg(p.id) FILTER (WHERE p.n = %(limit)s))[1] AS last_id
FROM (
    SELECT runs.*, row_number() OVER (ORDER BY created_at DESC, id DESC) AS n
    FROM runs {"WHERE " + " AND ".join(where) if where else ""}
    ORDER BY created_at DESC, id DESC
    LIMIT %(limit)s + 1
) p"""


_RUNS_SQL: Final = {
    (owner, status, cursor): _runs_sql(owner=owner, status=status, cursor=cursor)
    for owner in (False, True)
    for status in (False, True)
    for cursor in (False, True)
}


async def runs_page_json(
    engine: AsyncEngine,
    *,
    owner: str | None,
    status: RunStatus | None,
    limit: int,
    cursor: str | None,
) -> bytes:
    """`GET /runs`'s body (`RunPage`): newest first, keyset pages on (created_at, id).

    The same pages and cursors as `repository.list_runs`; an invalid cursor is its
    `InvalidInput`.
    """
    params: dict[str, Any] = {
        "owner": owner,
        "status": None if status is None else status.value,
        "limit": limit,
    }
    if cursor:
        params["cursor_created"], params["cursor_id"] = decode_cursor(cursor)
    sql = _RUNS_SQL[(owner is not None, status is not None, bool(cursor))]
    async with read_connection(engine) as conn:
        row = await (await conn.execute(sql, params)).fetchone()
    assert row is not None  # an aggregate: always one row
    items, more, last_created, last_id = row
    next_cursor = json.dumps(encode_cursor_values(last_created, last_id)) if more else "null"
    return f'{{"items": {items}, "next_cursor": {next_cursor}}}'.encode()


_EVENTS = f"""
SELECT coalesce(e.items, '[]') AS items, e.last
FROM runs r
LEFT JOIN LATERAL (
    SELECT json_agg(json_build_object(
               'id', x.id, 'run_id', x.run_id, 'name', x.name, 'payload', x.payload,
               'correlation_id', x.correlation_id, 'created_at', {_ts("x.created_at")})
               ORDER BY x.id)::text AS items,
           max(x.id) AS last
    FROM (SELECT * FROM run_events WHERE run_id = r.id AND id > %(after)s
          ORDER BY id LIMIT %(limit)s) x
) e ON true
WHERE r.id = %(id)s"""
EVENTS_SQL: Final = _EVENTS
EVENTS_OF_OWNER_SQL: Final = _EVENTS + " AND r.owner = %(owner)s"


async def events_page_json(
    engine: AsyncEngine, run_id: uuid.UUID, owner: str | None, *, after: int, limit: int
) -> bytes | None:
    """`GET /runs/{id}/events`'s body (`EventPage`): events with id > `after`, oldest first.

    None when the run does not exist for `owner` (checked in the same statement).
    """
    params: dict[str, Any] = {"id": run_id, "after": after, "limit": limit, "owner": owner}
    sql = EVENTS_SQL if owner is None else EVENTS_OF_OWNER_SQL
    async with read_connection(engine) as conn:
        row = await (await conn.execute(sql, params)).fetchone()
    if row is None:
        return None
    items, last = row
    next_after = after if last is None else int(last)
    return f'{{"items": {items}, "next_after": {next_after}}}'.encode()
