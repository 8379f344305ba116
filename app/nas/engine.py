"""The narrow interface the service uses: `run_search`.

Knows nothing of HTTP, SQL or the queue: it takes a validated `NasSpec`, trains candidates
for real, reports progress through a `ProgressReporter` and writes artifacts to a folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from app.nas.artifacts import ArtifactStore
from app.nas.datasets import Dataset, DatasetUnavailable, load_dataset
from app.nas.records import (
    ProgressReporter,
    SearchResult,
    SearchStatus,
    TrialRecord,
    TrialStart,
)
from app.nas.space import head_for
from app.nas.spec import NasSpec
from app.nas.strategies import STRATEGIES, SearchContext, SearchFailed
from app.nas.trainer import Cancelled

__all__ = [
    "DatasetUnavailable",
    "ProgressReporter",
    "SearchFailed",
    "SearchResult",
    "TrialRecord",
    "TrialStart",
    "run_search",
]


def run_search(
    spec: NasSpec,
    *,
    artifacts_dir: Path,
    reporter: ProgressReporter | None = None,
    should_stop: Callable[[], bool] | None = None,
    completed_trials: Sequence[TrialRecord] = (),
    data_cache_dir: Path | None = None,
    dataset: Dataset | None = None,
) -> SearchResult:
    """Run the search described by ``spec`` and return its result.

    * ``completed_trials``: final records of an earlier, interrupted attempt with the same
      spec. The seeded candidate sequence is regenerated and those trial numbers are not
      trained again; their records count for ranking and for the budget.
    * ``should_stop``: polled between trials, between epochs and every 10 batches; when it
      returns True the current trial is abandoned (not recorded) and the result is
      ``cancelled``.
    * ``budget.max_seconds``: checked at the same points; the run stops as soon as the time
      is up (the interrupted trial is dropped) with status ``timed_out``, even if some
      trials completed. A run that finishes its trials in time is ``completed``.
    * Failed trials (non-finite loss, backend errors) are recorded ``failed`` and the search
      goes on; once more than ``parameters.max_failed_trials`` failed (earlier attempts
      included), `SearchFailed` is raised.
    * ``dataset``: use this in-memory dataset instead of loading ``spec.dataset_id``.

    Raises `DatasetUnavailable` when the data cannot be loaded.
    """
    started = time.monotonic()
    params = spec.parameters
    data = dataset or load_dataset(
        spec.dataset_id,
        spec.dataset_options,
        validation_split=params.validation_split,
        seed=params.seed,
        cache_dir=data_cache_dir,
    )
    store = ArtifactStore(Path(artifacts_dir))
    store.write_preprocessing(data.preprocessing())
    head = head_for(data.task, data.n_classes, spec.search_space.final_activation)
    ctx = SearchContext(
        spec=spec,
        data=data,
        head=head,
        store=store,
        reporter=reporter,
        should_stop=should_stop,
        deadline=None if spec.budget.max_seconds is None else started + spec.budget.max_seconds,
        reused={t.number: t for t in completed_trials if t.number <= spec.budget.max_trials},
    )
    strategy = STRATEGIES[params.strategy]()
    message = ""
    try:
        status: SearchStatus = strategy.run(ctx)
    except Cancelled:
        status = "timed_out" if ctx.timed_out() else "cancelled"
        ctx.release()
    except SearchFailed:
        ctx.release()
        raise
    if status == "exhausted":
        message = (
            f"search space exhausted: only {len(ctx.records)} distinct architectures found "
            f"for max_trials={spec.budget.max_trials}"
        )
    elif status == "timed_out":
        message = f"max_seconds={spec.budget.max_seconds} reached"
    if ctx.best is not None and ctx.best.number != store.saved_best_number():
        # The best is a reused trial whose model this directory does not hold.
        message = (message + "; " if message else "") + "best model file is from another trial"
    trials = sorted(ctx.records.values(), key=lambda t: t.number)
    result = SearchResult(
        status=status,
        objective=spec.resolved_objective,
        direction=spec.direction,
        trials=trials,
        best=ctx.best,
        total_epochs=ctx.total_epochs,
        message=message,
    )
    store.write_history(trials)
    store.write_result(result.to_dict())
    result.artifacts = store.paths()
    return result
