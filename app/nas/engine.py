"""The narrow interface the service uses: `run_search`.

Knows nothing of HTTP, SQL or the queue: it takes a validated `NasSpec`, trains candidates
for real, reports progress through a `ProgressReporter` and writes artifacts to a folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from app.nas.artifacts import ArtifactStore
from app.nas.backend import freeze_heap
from app.nas.datasets import Dataset, DatasetUnavailable, load_dataset
from app.nas.limits import DEFAULT_MAX_TRAINABLE_PARAMS, ParamsCap
from app.nas.records import (
    ProgressReporter,
    SearchResult,
    SearchStatus,
    TrialRecord,
    TrialStart,
)
from app.nas.space import head_for, smallest_trainable_params
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
    max_trainable_params: int = DEFAULT_MAX_TRAINABLE_PARAMS,
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
    * ``max_trainable_params``: the service's cap on trainable parameters per architecture
      (``CEREBROS_MAX_TRAINABLE_PARAMS``); ``parameters.max_params`` can lower it. Candidates
      over it are recorded ``failed`` (``skipped``) without being built and others are drawn
      in their place; after `MAX_CONSECUTIVE_OVERSIZED` such draws in a row the result is
      ``exhausted``. If even the smallest architecture of the space is over it,
      `SearchFailed` is raised before any draw.

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
    head = head_for(data.task, data.n_classes, spec.search_space.final_activation)
    cap = ParamsCap.for_run(max_trainable_params, params.max_params)
    smallest = smallest_trainable_params(spec.search_space, input_dim=data.input_dim, head=head)
    if smallest > cap.limit:
        raise SearchFailed(
            f"the smallest architecture of this search space has {smallest:,} trainable "
            f"parameters, over the cap of {cap.limit:,}; {cap.remedy('minimum')}"
        )
    store = ArtifactStore(Path(artifacts_dir))
    store.write_preprocessing(data.preprocessing())
    ctx = SearchContext(
        spec=spec,
        data=data,
        head=head,
        store=store,
        cap=cap,
        reporter=reporter,
        should_stop=should_stop,
        deadline=None if spec.budget.max_seconds is None else started + spec.budget.max_seconds,
        # Skipped candidates take numbers too, so numbers may exceed max_trials.
        reused={t.number: t for t in completed_trials},
    )
    strategy = STRATEGIES[params.strategy]()
    freeze_heap()
    message = ""
    failure = ""
    try:
        status: SearchStatus = strategy.run(ctx)
    except Cancelled:
        status = "timed_out" if ctx.timed_out() else "cancelled"
    except SearchFailed as exc:
        failure = str(exc)
    # After the handlers: the exception's traceback no longer holds the trial's model.
    ctx.release()
    if failure:
        raise SearchFailed(failure)  # a new error, not chained to the trial's frames
    if status == "exhausted":
        message = ctx.exhausted_reason or "search space exhausted"
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
