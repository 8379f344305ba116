"""The typed records of a run (no database): statuses, result, error, objective, undo reason."""

from __future__ import annotations

from typing import Any

import pytest

from app.db.models import ACTIVE_STATUSES, FINAL_STATUSES, RunStatus, TrialStatus
from app.nas.records import SearchResult, TrialRecord
from app.pipeline.outcome import InvalidResult, RunCancelled, SearchOutcome
from app.pipeline.steps import undo_reason
from app.saga import SagaFailed, UndoOutcome
from app.schemas.runs import RunError, RunObjective, RunSummary, StoredSpec, UndoRecord

#: The keys `runs.result` has always had (the API's `result`).
RESULT_KEYS = {
    "status",
    "objective",
    "direction",
    "best_score",
    "best_trial",
    "best_architecture",
    "best_hyperparameters",
    "trials_completed",
    "trials_total",
    "total_epochs",
    "artifacts",
    "message",
    "selection",
}


def test_run_status_behaviour() -> None:
    assert {s for s in RunStatus if s.is_final} == FINAL_STATUSES
    assert {RunStatus.QUEUED, RunStatus.RUNNING} == ACTIVE_STATUSES
    assert RunStatus("succeeded") == "succeeded"  # stored and answered as its value


def test_trial_status_behaviour() -> None:
    finished = {s for s in TrialStatus if s.is_finished}
    final = {s for s in TrialStatus if s.is_final}
    assert finished == {TrialStatus.COMPLETED, TrialStatus.PRUNED, TrialStatus.FAILED}
    assert final == finished | {TrialStatus.CANCELLED}


def record(number: int, status: Any = "completed", score: float | None = 0.9) -> TrialRecord:
    return TrialRecord(
        number=number,
        status=status,
        architecture={"levels": [[{"neurons": 4}]]},
        hyperparameters={"learning_rate": 0.01},
        params_count=10,
        score=score,
        history=[{"epoch": 1, "val_accuracy": 0.9}],
    )


def search(status: Any = "completed", best: TrialRecord | None = None) -> SearchResult:
    trials = [record(1), record(2, "pruned", 0.5)] if best is not None else []
    return SearchResult(
        status=status,
        objective="val_accuracy",
        direction="max",
        trials=trials,
        best=best,
        total_epochs=4,
        artifacts={"best_model": "/tmp/x/best_model.keras"},
        message="done",
    )


def test_a_search_becomes_the_run_summary_with_the_stored_keys() -> None:
    outcome = SearchOutcome.model_validate(
        SearchOutcome.of(search(best=record(1))).model_dump(mode="json")
    )
    summary = outcome.summary()
    stored = summary.model_dump(mode="json")
    assert set(stored) == RESULT_KEYS
    assert stored["best_score"] == 0.9 and stored["best_trial"] == 1
    assert stored["trials_completed"] == 1 and stored["trials_total"] == 2
    assert "history" not in str(outcome.model_dump())  # trials live in the trials table
    assert RunSummary.read(stored) == summary


def test_the_outcome_of_an_older_worker_still_reads() -> None:
    # What execute_nas_run stored before SearchOutcome: SearchResult.to_dict(), trimmed.
    old = {**search(best=record(1)).to_dict(), "trials_total": 2}
    old.pop("trials")
    assert SearchOutcome.model_validate(old).summary().best_trial == 1


@pytest.mark.parametrize(
    ("result", "error", "words"),
    [
        (search("cancelled", best=record(1)), RunCancelled, "cancelled by the user"),
        (search(best=None), InvalidResult, "no trial completed"),
        (search(best=record(1, score=None)), InvalidResult, "no finite score"),
    ],
)
def test_a_search_that_cannot_be_a_result_is_refused(
    result: SearchResult, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words):
        SearchOutcome.of(result).summary()


def test_a_stored_result_of_another_shape_reads_as_none() -> None:
    assert RunSummary.read(None) is None
    assert RunSummary.read({"artifacts": {}, "best_trial": 1}) is None


def test_one_error_shape_for_the_saga_and_the_job() -> None:
    failed = SagaFailed(
        "s", "execute_nas_run", "InjectedFault", "boom", (UndoOutcome("publish", "undone"),)
    )
    saga = RunError.model_validate(failed.to_dict())
    job = RunError(type="internal", error="KeyError", message="'x'")
    for error in (saga, job):
        assert {"step", "type", "message", "undo"} <= set(error.model_dump(mode="json"))
    assert saga.step == "execute_nas_run" and saga.undo == [
        UndoRecord(step="publish", status="undone")
    ]
    assert job.step is None
    # Errors stored before RunError (either shape) read back.
    assert RunError.model_validate({"type": "transient_exhausted", "error": "X", "message": "m"})
    assert RunError.model_validate(failed.to_dict()).model_dump(mode="json")["undo"] == [
        {"step": "publish", "status": "undone", "error": None}
    ]


def test_the_direction_comes_from_the_result_else_the_stored_spec() -> None:
    summary = RunSummary.read(
        SearchOutcome.of(search(best=record(1))).summary().model_dump(mode="json")
    )
    spec = StoredSpec.read({"objective": "val_loss", "parameters": {"direction": "max"}})
    assert spec.direction == "max"  # the spec's override
    assert StoredSpec.read({"objective": "val_loss"}).direction == "min"  # the objective's
    assert StoredSpec.read({"budget": "junk"}) == StoredSpec()
    assert StoredSpec().direction is None
    assert RunObjective.of(summary, StoredSpec()) == RunObjective(
        name="val_accuracy", direction="max"
    )
    assert RunObjective.of(None, spec) == RunObjective(name="val_loss", direction="max")


def test_the_undo_reason_is_the_sagas_stored_failure() -> None:
    step = {"step": "process_results", "type": "InjectedFault", "message": "x"}
    job = {"step": None, "type": "internal", "error": "KeyError", "message": "'k'"}
    assert undo_reason(step) == "process_results failed: InjectedFault: x"
    assert undo_reason(job) == "internal: 'k'"
    assert undo_reason(None) == "a later step failed"
