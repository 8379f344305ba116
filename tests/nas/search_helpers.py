"""A tiny ask/tell loop for strategy tests: no keras, the score a known function."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from app.nas.limits import ParamsCap
from app.nas.space import Architecture, head_for
from app.nas.spec import NasSpec
from app.nas.strategies import STRATEGIES
from app.nas.strategies.base import Done, NewTrial, SearchSetup, TrialView, Wait

HEAD = head_for("classification", 10, None)
INPUT_DIM = 16

#: A space with room to search: depth, width, activation and learning rate all matter below.
SPACE: dict[str, Any] = {
    "minimum_levels": 1,
    "maximum_levels": 6,
    "minimum_units_per_level": 1,
    "maximum_units_per_level": 4,
    "minimum_neurons_per_unit": 4,
    "maximum_neurons_per_unit": 256,
    "activation": ["relu", "tanh", "elu"],
    "learning_rate": [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1],
}


def make_setup(
    strategy: str,
    seed: int,
    *,
    max_trials: int = 30,
    space: Mapping[str, Any] | None = None,
    cap: int = 10**9,
    **spec: Any,
) -> SearchSetup:
    parameters = {"strategy": strategy, "seed": seed, "epochs": 4, **spec.pop("parameters", {})}
    data = {
        "dataset_id": "digits",
        "search_space": dict(SPACE if space is None else space),
        "budget": {"max_trials": max_trials},
        "parameters": parameters,
        **spec,
    }
    return SearchSetup(
        spec=NasSpec.model_validate(data),
        input_dim=INPUT_DIM,
        head=HEAD,
        cap=ParamsCap(limit=cap, service_limit=max(cap, 10**9)),
    )


def landscape(arch: Architecture) -> float:
    """A smooth, known score to maximise (0 at best).

    Best: three hidden levels, units of about 64 neurons (geometric mean), all ``elu``, and a
    learning rate of 10**-2.5.
    """
    score = -0.15 * (arch.n_levels - 4) ** 2
    units = [u for level in arch.levels[:-1] for u in level]
    if units:
        score -= 0.1 * (statistics.mean(math.log2(u.neurons) for u in units) - 6) ** 2
        score -= 0.1 * sum(u.activation != "elu" for u in units) / len(units)
    score -= 0.3 * (math.log10(arch.learning_rate) + 2.5) ** 2
    return score


Objective = Callable[[Architecture], float]


def finish(trial: TrialView, objective: Objective, measures: Objective | None = None) -> TrialView:
    """``trial`` trained: completed with its score (and, with ``measures``, a second value)."""
    objectives: dict[str, float] = {}
    if measures is not None:
        objectives = {"inference_ms": measures(trial.architecture)}
    return replace(
        trial, status="completed", score=objective(trial.architecture), objectives=objectives
    )


def simulate(
    setup: SearchSetup,
    objective: Objective = landscape,
    *,
    parallel: int = 1,
    measures: Objective | None = None,
) -> list[TrialView]:
    """Ask until done, numbering trials and "training" them by evaluating ``objective``.

    With ``parallel`` > 1, up to that many trials run at once; the oldest finishes first.
    """
    strategy = STRATEGIES[setup.spec.parameters.strategy](setup)
    history: list[TrialView] = []
    while True:
        decision = strategy.ask(history)
        if isinstance(decision, Done):
            assert not any(t.active for t in history)
            return history
        active = [i for i, t in enumerate(history) if t.active]
        if isinstance(decision, Wait):
            assert active, "Wait with nothing running"
            history[active[0]] = finish(history[active[0]], objective, measures)
            continue
        assert isinstance(decision, NewTrial)
        history.append(
            TrialView(
                number=len(history) + 1,
                status="running",
                architecture=decision.architecture,
                epochs=decision.epochs,
                initial_epoch=decision.initial_epoch,
                parent=decision.parent,
            )
        )
        active.append(len(history) - 1)
        if len(active) >= parallel:
            history[active[0]] = finish(history[active[0]], objective, measures)


def best(history: list[TrialView]) -> float:
    return max(t.score for t in history if t.score is not None)
