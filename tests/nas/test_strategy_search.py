"""TPE, regularized evolution and NSGA-II on synthetic landscapes (no keras, seconds).

Each strategy runs through the ask/tell loop of `search_helpers.simulate`: ask, number the
trial, "train" it by evaluating a known function, append it to the history as completed.
Comparisons are medians over many seeds, never one run.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from optuna.samplers import NSGAIISampler

from app.nas.mutation import mutate
from app.nas.pareto import dominates, pareto_front
from app.nas.space import Architecture, architecture_errors
from app.nas.strategies import STRATEGIES, evolution
from app.nas.strategies.base import Done, NewTrial, TrialView, Wait
from app.nas.strategies.evolution import population, tournament
from app.nas.strategies.nsga2 import NSGA2Search
from app.nas.strategies.optuna_space import seed_for
from app.nas.strategies.tpe import startup_trials
from tests.nas.search_helpers import HEAD, best, landscape, make_setup, simulate

NEW_STRATEGIES = ("tpe", "evolution", "nsga2")


def median_best(strategy: str, seeds: range, max_trials: int, **spec: Any) -> float:
    return statistics.median(
        best(simulate(make_setup(strategy, s, max_trials=max_trials, **spec))) for s in seeds
    )


def test_tpe_beats_random_search_in_the_median() -> None:
    seeds = range(200, 215)
    tpe = median_best("tpe", seeds, 30)
    random = median_best("random", seeds, 30)
    # Here -0.100 against -0.154 (TPE better in 10 seeds, worse in 4). Over seeds 300-329:
    # -0.100 against -0.140 (better in 22, worse in 8).
    assert tpe > random, (tpe, random)


def test_evolution_beats_random_search_in_the_median() -> None:
    seeds = range(200, 231)
    parameters = {"population_size": 10, "sample_size": 5}
    evolution = median_best("evolution", seeds, 60, parameters=parameters)
    random = median_best("random", seeds, 60)
    # Here -0.052 against -0.097. Over seeds 200-239: -0.054 against -0.108 (better in
    # 30 seeds, worse in 10).
    assert evolution > random, (evolution, random)


@pytest.mark.parametrize("strategy", NEW_STRATEGIES)
def test_every_proposal_is_a_new_valid_architecture_of_the_space(strategy: str) -> None:
    setup = make_setup(strategy, 3, max_trials=40, parameters={"population_size": 8})
    history = simulate(setup, parallel=3)
    assert len(history) == 40
    fingerprints = [t.fingerprint for t in history]
    assert len(set(fingerprints)) == len(fingerprints)
    space = setup.spec.search_space
    for t in history:
        assert architecture_errors(t.architecture, head=HEAD, space=space) == []
        assert t.epochs == setup.spec.epochs_per_trial and t.parent is None


@pytest.mark.parametrize("strategy", NEW_STRATEGIES)
def test_warm_up_is_the_random_sequence(strategy: str) -> None:
    """The first trials are random search's first candidates (same seed, same order)."""
    setup = make_setup(strategy, 5, max_trials=20, parameters={"population_size": 6})
    history = simulate(setup)
    random = simulate(make_setup("random", 5, max_trials=20))
    warm_up = {"tpe": startup_trials(20), "evolution": 6, "nsga2": 6}[strategy]
    assert [t.fingerprint for t in history[:warm_up]] == [t.fingerprint for t in random[:warm_up]]
    assert [t.fingerprint for t in history] != [t.fingerprint for t in random]


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_same_seed_and_history_give_the_same_proposal(strategy: str) -> None:
    """Resume is asking a fresh instance again: it must answer exactly the same."""
    setup = make_setup(strategy, 11, max_trials=24, parameters={"population_size": 5})
    history = simulate(setup, parallel=2)
    for cut in (0, 3, 7, 12, 20):
        prefix = history[:cut]
        # Half of the prefix's last trials still running, as after a crash.
        prefix = [
            replace(t, status="running", score=None) if i >= cut - 2 and t.parent is None else t
            for i, t in enumerate(prefix)
        ]
        first = STRATEGIES[strategy](setup).ask(prefix)
        again = STRATEGIES[strategy](setup).ask(prefix)
        assert first == again
        if isinstance(first, NewTrial):
            assert isinstance(again, NewTrial)
            assert first.architecture.fingerprint() == again.architecture.fingerprint()


@pytest.mark.parametrize("strategy", NEW_STRATEGIES)
def test_a_different_seed_gives_a_different_search(strategy: str) -> None:
    a = simulate(make_setup(strategy, 1, max_trials=16, parameters={"population_size": 5}))
    b = simulate(make_setup(strategy, 2, max_trials=16, parameters={"population_size": 5}))
    assert [t.fingerprint for t in a] != [t.fingerprint for t in b]


@pytest.mark.parametrize("strategy", NEW_STRATEGIES)
def test_budget_counts_new_trials_and_waits_for_running_ones(strategy: str) -> None:
    setup = make_setup(strategy, 4, max_trials=6, parameters={"population_size": 3})
    history = simulate(setup)
    assert len(history) == 6
    running = [replace(t, status="running", score=None) for t in history]
    strategy_ = STRATEGIES[strategy](setup)
    assert strategy_.ask(running) == Wait()
    assert strategy_.ask(history) == Done()
    # Over-cap trials (never built) do not use up the budget.
    skipped = [replace(t, status="failed", score=None, skipped=True) for t in history[:2]]
    more = strategy_.ask(skipped + history[2:])
    assert isinstance(more, NewTrial)
    assert more.architecture.fingerprint() not in {t.fingerprint for t in history}


@pytest.mark.parametrize("strategy", NEW_STRATEGIES)
def test_failed_skipped_and_pruned_trials_do_not_break_the_search(strategy: str) -> None:
    setup = make_setup(strategy, 8, max_trials=30, parameters={"population_size": 6})
    history = simulate(setup)[:18]
    marked = []
    for t in history:
        if t.number % 5 == 0:
            t = replace(t, status="failed", score=None)
        elif t.number % 7 == 0:
            t = replace(t, status="failed", score=None, skipped=True)
        elif t.number % 4 == 0:
            t = replace(t, status="pruned")
        marked.append(t)
    decision = STRATEGIES[strategy](setup).ask(marked)
    assert isinstance(decision, NewTrial)
    assert decision.architecture.fingerprint() not in {t.fingerprint for t in marked}


def test_tpe_steers_away_from_architectures_over_the_cap() -> None:
    """Trials refused by the cap count as the worst score: later proposals are smaller."""
    setup = make_setup("tpe", 21, max_trials=40, cap=60_000)
    strategy = STRATEGIES["tpe"](setup)
    history: list[TrialView] = []
    while len(history) < 120:
        decision = strategy.ask(history)
        if not isinstance(decision, NewTrial):
            break
        arch = decision.architecture
        t = TrialView(len(history) + 1, "running", arch, decision.epochs)
        if arch.trainable_params_count() > setup.cap.limit:  # what the planner records
            history.append(replace(t, status="failed", skipped=True))
        else:
            history.append(replace(t, status="completed", score=landscape(arch)))
    new = [t for t in history if t.is_new]
    early = sum(t.skipped for t in new[:20]) / 20
    late = sum(t.skipped for t in new[-20:]) / 20
    assert late < early, (early, late)


def test_evolution_population_is_the_most_recent_scored_trials() -> None:
    setup = make_setup("evolution", 0, max_trials=30, parameters={"population_size": 4})
    history = simulate(setup)[:12]
    history[-1] = replace(history[-1], status="running", score=None)
    history[-2] = replace(history[-2], status="failed", score=None)
    members = population(history, 4)
    assert [t.number for t in members] == [7, 8, 9, 10]
    # The tournament's winner is the best of its sample; a sample of all is the best.
    winner = tournament(setup, members, 4, np.random.default_rng(0))
    assert winner.score == max(t.score for t in members if t.score is not None)


def test_evolution_children_are_one_mutation_of_a_tournament_winner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the random population, every proposal is `mutate` of a population member."""
    calls: list[tuple[Architecture, Architecture]] = []

    def recording(arch: Architecture, *args: Any, **kwargs: Any) -> tuple[Architecture, str]:
        child, kind = mutate(arch, *args, **kwargs)
        calls.append((arch, child))
        return child, kind

    monkeypatch.setattr(evolution, "mutate", recording)
    setup = make_setup(
        "evolution", 6, max_trials=30, parameters={"population_size": 8, "sample_size": 3}
    )
    history = simulate(setup)
    for index in range(8, 30):
        child = history[index].architecture
        parents = [p for p, c in calls if c == child]
        assert parents, f"trial {index + 1} is not a mutation"
        members = {t.fingerprint for t in population(history[:index], 8)}
        # The first time it was made is when it was proposed (later ones were duplicates).
        assert parents[0].fingerprint() in members


# -- NSGA-II -------------------------------------------------------------------------------
def _inference_ms(arch: Architecture) -> float:
    return 0.01 * math.sqrt(arch.trainable_params_count())


OBJECTIVES = [{"name": "val_accuracy"}, {"name": "inference_ms"}]


def test_nsga2_front_is_non_dominated_and_covers_the_trade_off() -> None:
    setup = make_setup(
        "nsga2", 3, max_trials=40, objectives=OBJECTIVES, parameters={"population_size": 10}
    )
    assert setup.spec.resolved_objectives == [
        ("val_accuracy", "maximize"),
        ("inference_ms", "minimize"),
    ]
    history = simulate(setup, measures=_inference_ms)
    points = [(t.score or 0.0, t.objectives["inference_ms"]) for t in history]
    directions = [d for _, d in setup.spec.resolved_objectives]
    front = pareto_front(points, directions)
    assert len(front) >= 2
    for i in front:
        assert not any(dominates(points[j], points[i], directions) for j in range(len(points)))
    for j in set(range(len(points))) - set(front):
        assert any(dominates(points[i], points[j], directions) for i in front)


def test_nsga2_rebuilds_optunas_generations_from_the_history() -> None:
    """Every population_size completed trials make a generation; the next ask breeds."""
    setup = make_setup(
        "nsga2", 3, max_trials=25, objectives=OBJECTIVES, parameters={"population_size": 5}
    )
    history = simulate(setup, measures=_inference_ms)
    history[7] = replace(history[7], status="failed", score=None)  # no generation's member
    strategy = NSGA2Search(setup)
    study = strategy._study(history, seed_for(3, len(history)))
    sampler = study.sampler
    assert isinstance(sampler, NSGAIISampler)
    key = sampler._get_generation_key()
    generations = [t.system_attrs[key] for t in study.trials]
    assert generations == [0] * 5 + [1] * 6 + [2] * 5 + [3] * 5 + [4] * 4
    trial = study.ask()
    generation = sampler.get_trial_generation(study, study._storage.get_trial(trial._trial_id))
    assert generation == 4
    assert len(sampler.get_parent_population(study, generation)) == 5


def test_nsga2_with_one_objective_uses_the_score() -> None:
    setup = make_setup("nsga2", 2, max_trials=14, parameters={"population_size": 5})
    history = simulate(setup)
    assert len(history) == 14
    assert best(history) > -math.inf
