"""ASHA, Hyperband, random and the planner on synthetic results (no training, no keras)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from app.nas.limits import ParamsCap
from app.nas.planner import plan
from app.nas.space import Architecture
from app.nas.spec import NasSpec
from app.nas.strategies import (
    STRATEGIES,
    Done,
    NewTrial,
    SearchFailed,
    SearchSetup,
    TrialView,
    Wait,
)
from app.nas.strategies.asha import ASHA, Hyperband, rung_epochs
from tests.nas.search_helpers import HEAD, INPUT_DIM, SPACE, landscape, make_setup, simulate


def test_rung_epochs() -> None:
    assert rung_epochs(1, 9, 3) == [1, 3, 9]
    assert rung_epochs(2, 10, 3) == [2, 6, 10]
    assert rung_epochs(1, 4, 2) == [1, 2, 4]
    assert rung_epochs(5, 4, 2) == [4]


def completed(t: TrialView, score: float) -> TrialView:
    return replace(t, status="completed", score=score)


def test_asha_promotes_the_top_third_of_a_rung_and_only_once() -> None:
    setup = make_setup("asha", 1, max_trials=9, parameters={"epochs": 9, "reduction_factor": 3})
    strategy = ASHA(setup)
    history: list[TrialView] = []
    for number in (1, 2):
        step = plan(strategy, history, max_active=1)
        history.append(completed(step.start[0].view(), score=0.1 * number))
    # Two results at rung 0: floor(2/3) = 0 promotable, so a new candidate.
    decision = strategy.ask(history)
    assert isinstance(decision, NewTrial) and decision.parent is None and decision.epochs == 1
    assert decision.checkpoint  # it may be continued later
    history.append(completed(plan(strategy, history, max_active=1).start[0].view(), score=0.9))
    # Three results: the best (trial 3) goes on to 3 epochs, from its own saved model.
    decision = strategy.ask(history)
    assert isinstance(decision, NewTrial)
    assert (decision.parent, decision.initial_epoch, decision.epochs) == (3, 1, 3)
    assert decision.architecture == history[2].architecture
    history.append(replace(plan(strategy, history, max_active=1).start[0].view(), status="running"))
    nxt = strategy.ask(history)  # trial 3 is promoted already: a new candidate again
    assert isinstance(nxt, NewTrial) and nxt.parent is None


def test_asha_never_waits_while_something_could_start() -> None:
    rng = random.Random(7)
    setup = make_setup("asha", 3, max_trials=20, parameters={"epochs": 9, "reduction_factor": 3})
    strategy = ASHA(setup)
    eta = 3
    history: list[TrialView] = []
    while True:
        step = plan(strategy, history, max_active=3)
        history.extend(p.view() for p in step.start)
        if step.done is not None:
            break
        decision = strategy.ask(history)
        if isinstance(decision, Wait):
            new = sum(1 for t in history if t.is_new)
            assert new >= 20  # the budget is used up...
            promoted = {t.parent for t in history if t.parent is not None}
            for epochs in (1, 3):  # ...and no finished trial could be promoted
                pool = sorted(
                    (t for t in history if t.status == "completed" and t.epochs == epochs),
                    key=lambda t: -(t.score or 0),
                )
                assert all(t.number in promoted for t in pool[: len(pool) // eta])
        active = [t for t in history if t.active]
        assert active, "planned nothing, yet not done"
        done = rng.choice(active)  # trials end in any order, as on many workers
        history[history.index(done)] = completed(done, landscape(done.architecture) + done.epochs)
    top = [t for t in history if t.epochs == 9]
    assert top and all(t.parent is not None for t in top)
    assert sum(1 for t in history if t.is_new) == 20


def test_a_spec_without_a_strategy_is_asha_and_max_trials_counts_new_candidates() -> None:
    """The README's account of the default: ``max_trials`` new candidates train
    ``min_epochs`` (1); the best third of each rung continues (a trial of its own, with a
    parent, outside the budget) to 3, then 9 epochs."""
    spec = NasSpec.model_validate(
        {
            "dataset_id": "digits",
            "search_space": SPACE,
            "budget": {"max_trials": 9},
            "parameters": {"epochs": 9, "seed": 2},
        }
    )
    assert spec.parameters.strategy == "asha"
    cap = ParamsCap(limit=10**9, service_limit=10**9)
    history = simulate(SearchSetup(spec=spec, input_dim=INPUT_DIM, head=HEAD, cap=cap))
    new = [t for t in history if t.parent is None]
    assert [t.epochs for t in new] == [1] * 9
    promotions = Counter(t.epochs for t in history if t.parent is not None)
    assert promotions[3] >= 3 and promotions[9] >= 1 and set(promotions) == {3, 9}
    assert len(history) == 9 + sum(promotions.values())  # trial numbers past max_trials
    trained = sum(t.epochs - t.initial_epoch for t in history)
    assert trained < 9 * 9 / 2  # under half of random search's 9 trials x 9 epochs


def test_hyperband_brackets_start_at_different_rungs() -> None:
    setup = make_setup("hyperband", 2, max_trials=6, parameters={"epochs": 9})
    strategy = Hyperband(setup)
    assert strategy.n_brackets == 3
    history: list[TrialView] = []
    for _ in range(6):
        step = plan(strategy, history, max_active=6)
        history.extend(p.view() for p in step.start)
    assert [t.epochs for t in history] == [1, 3, 9, 1, 3, 9]


@pytest.mark.parametrize("name", ["random", "asha", "hyperband"])
def test_same_seed_same_proposals_and_a_fresh_instance_resumes(name: str) -> None:
    def run(seed: int) -> list[str]:
        setup = make_setup(name, seed, max_trials=8)
        strategy = STRATEGIES[name](setup)
        history: list[TrialView] = []
        while True:
            step = plan(strategy, history, max_active=1)
            if step.done is not None:
                return [t.fingerprint for t in history]
            view = step.start[0].view()
            # Resume: a new instance, asked from the same history, says the same.
            again = STRATEGIES[name](setup).ask(history)
            assert isinstance(again, NewTrial)
            assert again.architecture == view.architecture and again.epochs == view.epochs
            history.append(completed(view, landscape(view.architecture)))

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_planner_bounds_active_trials_and_counts_failures() -> None:
    setup = make_setup("random", 1, max_trials=10, parameters={"max_failed_trials": 1})
    strategy = STRATEGIES["random"](setup)
    step = plan(strategy, [], max_active=3)
    assert [p.number for p in step.start] == [1, 2, 3] and step.done is None
    history = [replace(p.view(), status="failed", error="boom") for p in step.start[:2]]
    with pytest.raises(SearchFailed, match="2 trials failed"):
        plan(strategy, history, max_active=3)


def test_planner_records_candidates_over_the_cap_without_using_the_budget() -> None:
    setup = make_setup("random", 4, max_trials=2, cap=3_000)
    strategy = STRATEGIES["random"](setup)
    history: list[TrialView] = []
    skipped = 0
    while True:
        step = plan(strategy, history, max_active=1)
        skipped += len(step.skipped)
        history.extend(
            TrialView(
                number=r.number,
                status="failed",
                architecture=Architecture.from_dict(r.architecture),
                epochs=r.epochs_target,
                skipped=True,
            )
            for r in step.skipped
        )
        if isinstance(step.done, Done):
            break
        history.extend(completed(p.view(), 0.5) for p in step.start)
    trained = [t for t in history if not t.skipped]
    assert len(trained) == 2 and skipped > 0
    assert all(t.architecture.trainable_params_count() <= 3_000 for t in trained)
