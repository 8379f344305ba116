"""The run's model in Postgres, kept to the spec's selection rule as its trials end.

`best_model.keras` and `architecture.json` always hold the trial the rule chooses among the
run's completed trials (`app.nas.selection`). Under ``best`` a trial's model is stored there
when it becomes the choice, as before. Under ``smallest_within_tolerance`` a later trial can
make an earlier one the choice again, so every trial that may still be chosen (the rule's
`keepers`) keeps its exported model as ``candidates/trial_NNNN.keras``; a trial that stops
being a keeper has it deleted, and whenever the choice changes its candidate is copied to
`best_model.keras` (inside Postgres). `finish` drops the candidates at the run's end.

Every function works in the caller's transaction, with the run row locked (a trial's end,
the run's finish): two trials ending at once never interleave their writes.
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.nas.artifact_names import (
    ARCHITECTURE,
    BEST_MODEL,
    CANDIDATES,
    candidate_name,
    candidate_number,
    media_type_of,
)
from app.nas.artifacts import architecture_doc
from app.nas.records import TrialRecord
from app.nas.selection import Contender, choose, keepers
from app.nas.spec import NasSpec
from app.runs import artifacts, trials

__all__ = ["finish", "may_keep", "offer", "settle"]


def may_keep(spec: NasSpec, pool: list[Contender], record: TrialRecord) -> bool:
    """Whether ``record`` (not yet in ``pool``) would keep its model: worth exporting it.

    More trials only shrink the keepers, so a trial that is not one against an older
    snapshot of the run's trials is not one at its end either.
    """
    own = Contender.maybe(record.number, record.status, record.score, record.params_count)
    if own is None:
        return False
    others = [c for c in pool if c.number != record.number]
    return record.number in keepers([*others, own], spec.selection, spec.direction)


async def offer(
    session: AsyncSession, run_id: uuid.UUID, spec: NasSpec, record: TrialRecord, model: bytes
) -> None:
    """Keep ``model``, the exported model of ``record``, if the rule may choose that trial.

    Called once the trial is recorded completed, in the same transaction.
    """
    pool = await trials.contenders(session, run_id)
    if record.number not in keepers(pool, spec.selection, spec.direction):
        return
    if spec.selection.rule == "best":  # the only keeper is the choice itself
        await _store_best(session, run_id, model, record)
        return
    name = candidate_name(record.number)
    await artifacts.put_artifact(session, run_id, name, model, media_type_of(name))
    await settle(session, run_id, spec, pool)


async def settle(
    session: AsyncSession,
    run_id: uuid.UUID,
    spec: NasSpec,
    pool: list[Contender] | None = None,
) -> int | None:
    """Drop the candidates that can no longer be chosen and store the choice as the best model.

    Returns the trial number `best_model.keras` now holds (None when there is none).
    """
    if pool is None:
        pool = await trials.contenders(session, run_id)
    keep = keepers(pool, spec.selection, spec.direction)
    stored = set()
    for info in await artifacts.list_artifacts(session, run_id):
        number = candidate_number(info.name)
        if number is None:
            continue
        if number in keep:
            stored.add(number)
        else:
            await artifacts.delete_artifacts(session, run_id, prefix=info.name)
    held = await held_trial(session, run_id)
    chosen = choose(pool, spec.selection, spec.direction)
    if chosen is None or chosen.number == held or chosen.number not in stored:
        return held
    await artifacts.copy_artifact(session, run_id, candidate_name(chosen.number), BEST_MODEL)
    row = await trials.get_trial(session, run_id, chosen.number)
    if row is not None and row.record is not None:
        await _put_architecture(session, run_id, TrialRecord.from_dict(row.record))
    return chosen.number


async def finish(session: AsyncSession, run_id: uuid.UUID, spec: NasSpec) -> int | None:
    """At the run's end: settle the choice, delete every candidate.

    Returns the trial number `best_model.keras` holds.
    """
    held = await settle(session, run_id, spec)
    await artifacts.delete_artifacts(session, run_id, prefix=CANDIDATES + "/")
    return held


async def held_trial(session: AsyncSession, run_id: uuid.UUID) -> int | None:
    """The trial whose model `best_model.keras` holds, from `architecture.json` (stored with it)."""
    if await artifacts.artifact_info(session, run_id, BEST_MODEL) is None:
        return None
    doc = await artifacts.get_artifact(session, run_id, ARCHITECTURE)
    if doc is None:
        return None
    try:
        return int(json.loads(doc.content)["trial_number"])
    except (ValueError, KeyError, TypeError):
        return None


async def _store_best(
    session: AsyncSession, run_id: uuid.UUID, model: bytes, record: TrialRecord
) -> None:
    await artifacts.put_artifact(session, run_id, BEST_MODEL, model, media_type_of(BEST_MODEL))
    await _put_architecture(session, run_id, record)


async def _put_architecture(session: AsyncSession, run_id: uuid.UUID, record: TrialRecord) -> None:
    doc = json.dumps(architecture_doc(record), indent=2, sort_keys=True).encode()
    await artifacts.put_artifact(session, run_id, ARCHITECTURE, doc, media_type_of(ARCHITECTURE))
