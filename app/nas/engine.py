"""The serial driver: `run_search` trains a whole search in this process, one trial at a time.

Knows nothing of HTTP, SQL or the queue: it takes a validated `NasSpec`, asks the spec's
strategy through the planner (`app.nas.planner`), trains each trial with `train_trial`
(`app.nas.trial`), reports progress through a `ProgressReporter` and writes artifacts to a
folder. The service's workers drive the same planner and `train_trial` with trials as queue
jobs (`app.pipeline.coordinator`); this driver serves tests, benchmarks and notebooks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from app.nas.artifacts import ArtifactStore
from app.nas.backend import clear_backend_caches, freeze_heap
from app.nas.datasets import Dataset, DatasetUnavailable, load_dataset
from app.nas.limits import DEFAULT_MAX_TRAINABLE_PARAMS, ParamsCap
from app.nas.planner import plan, view_of
from app.nas.records import (
    ProgressReporter,
    SearchResult,
    SearchStatus,
    TrialRecord,
    TrialStart,
)
from app.nas.selection import Contender, choose, decide, keepers
from app.nas.space import head_for, smallest_trainable_params
from app.nas.spec import NasSpec
from app.nas.strategies import STRATEGIES, SearchFailed, SearchSetup
from app.nas.trainer import Cancelled
from app.nas.trial import TrialRequest, train_trial

__all__ = [
    "DatasetUnavailable",
    "ProgressReporter",
    "SearchFailed",
    "SearchResult",
    "TrialRecord",
    "TrialStart",
    "load_setup",
    "run_search",
]


def load_setup(spec: NasSpec, data: Dataset, max_trainable_params: int) -> SearchSetup:
    """The run's `SearchSetup`; raises `SearchFailed` if even the smallest network is too big."""
    head = head_for(data.task, data.n_classes, spec.search_space.final_activation)
    cap = ParamsCap.for_run(max_trainable_params, spec.parameters.max_params)
    smallest = smallest_trainable_params(spec.search_space, input_dim=data.input_dim, head=head)
    if smallest > cap.limit:
        raise SearchFailed(
            f"the smallest architecture of this search space has {smallest:,} trainable "
            f"parameters, over the cap of {cap.limit:,}; {cap.remedy('minimum')}"
        )
    return SearchSetup(spec=spec, input_dim=data.input_dim, head=head, cap=cap)


def contenders_of(records: Iterable[TrialRecord]) -> list[Contender]:
    """The completed trials with a score, as the selection rule sees them."""
    found = (Contender.maybe(r.number, r.status, r.score, r.params_count) for r in records)
    return [c for c in found if c is not None]


def _keep_model(
    store: ArtifactStore, spec: NasSpec, records: dict[int, TrialRecord], model: Any, number: int
) -> None:
    """Trial ``number`` completed with ``model``: keep it if the selection rule may choose it.

    As the workers do (`app.runs.chosen_model`): under ``best`` the model is saved as the
    best when the trial is the choice; under ``smallest_within_tolerance`` every trial that
    may still be chosen keeps its model in the work dir, and the choice's is the best model.
    """
    pool = contenders_of(records.values())
    keep = keepers(pool, spec.selection, spec.direction)
    if spec.selection.rule == "best":
        if number in keep:
            store.save_best(model, records[number])
        return
    if number in keep:
        store.save_candidate(model, number)
    store.drop_candidates(keep)
    chosen = choose(pool, spec.selection, spec.direction)
    if chosen is not None and chosen.number != store.saved_best_number():
        store.promote_candidate(records[chosen.number])


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
      spec: the strategy's history, so those trials are not trained again.
    * ``should_stop``: polled between trials, between epochs and every 10 batches; when it
      returns True the current trial is abandoned (not recorded) and the result is
      ``cancelled``.
    * ``budget.max_seconds``: checked at the same points; the run stops as soon as the time
      is up (the interrupted trial is dropped) with status ``timed_out``.
    * Failed trials are recorded ``failed`` and the search goes on; once more than
      ``parameters.max_failed_trials`` failed, `SearchFailed` is raised. Candidates over the
      parameter cap are recorded ``failed`` (``skipped``) without being built.

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
    setup = load_setup(spec, data, max_trainable_params)
    store = ArtifactStore(Path(artifacts_dir))
    store.write_preprocessing(data.preprocessing())
    strategy = STRATEGIES[params.strategy](setup)
    records = {t.number: t for t in completed_trials}
    deadline = None if spec.budget.max_seconds is None else started + spec.budget.max_seconds

    def timed_out() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    def stop_requested() -> bool:
        return timed_out() or bool(should_stop and should_stop())

    freeze_heap()
    status: SearchStatus = "completed"
    message = failure = ""
    try:
        while True:
            history = [view_of(r) for r in sorted(records.values(), key=lambda r: r.number)]
            step = plan(strategy, history, max_active=1)
            for rec in step.skipped:
                records[rec.number] = rec
                if reporter is not None:
                    reporter.trial_finished(rec)
            if step.done is not None:
                status, message = step.done.status, step.done.reason
                break
            if not step.start:
                continue  # only skips this time: ask again
            if stop_requested():
                raise Cancelled("stop requested")
            request = TrialRequest.of(step.start[0].number, step.start[0].request)
            number = request.number

            def on_epoch(epoch: int, metrics: dict[str, float], n: int = number) -> None:
                if reporter is not None:
                    reporter.epoch_finished(n, epoch, metrics)

            result = train_trial(
                spec,
                data,
                request,
                parent_model=store.read_checkpoint(request.parent),
                on_start=reporter.trial_started if reporter is not None else None,
                on_epoch=on_epoch,
                should_stop=stop_requested,
            )
            rec = result.record
            records[number] = rec
            if result.checkpoint is not None:
                store.write_checkpoint(number, result.checkpoint)
            if rec.status == "completed":
                _keep_model(store, spec, records, result.model, number)
            del result
            clear_backend_caches()  # the model is gone: free what the backend kept of it
            store.write_history(records.values())
            if reporter is not None:
                reporter.trial_finished(rec)
    except Cancelled:
        status = "timed_out" if timed_out() else "cancelled"
    except SearchFailed as exc:
        failure = str(exc)
    # After the handlers: the exception's traceback no longer holds the trial's model.
    clear_backend_caches()
    if status != "cancelled":
        store.drop_work_dir()  # kept after a cancel: a resume continues those models
    if failure:
        raise SearchFailed(failure)  # a new error, not chained to the trial's frames
    if status == "timed_out":
        message = f"max_seconds={spec.budget.max_seconds} reached"
    trials = sorted(records.values(), key=lambda t: t.number)
    choice = decide(contenders_of(trials), spec.selection, spec.direction)
    best = None if choice is None else records[choice.trial]
    if best is not None and best.number != store.saved_best_number():
        # The best is a reused trial whose model this directory does not hold.
        message = (message + "; " if message else "") + "best model file is from another trial"
    result_ = SearchResult(
        status=status,
        objective=spec.resolved_objective,
        direction=spec.direction,
        trials=trials,
        best=best,
        total_epochs=sum(t.epochs_run for t in trials),
        message=message,
        selection=choice,
    )
    store.write_history(trials)
    store.write_result(result_.to_dict())
    result_.artifacts = store.paths()
    return result_
