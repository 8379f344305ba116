"""Search strategies, by the name used in ``parameters.strategy``.

``successive_halving`` is the name runs submitted before ASHA existed used: it is ASHA
now (asynchronous: promotions never wait for a rung to fill).
"""

from __future__ import annotations

from app.nas.strategies.asha import ASHA, Hyperband
from app.nas.strategies.base import (
    Decision,
    Done,
    NewTrial,
    SearchFailed,
    SearchSetup,
    Strategy,
    TrialView,
    Wait,
)
from app.nas.strategies.evolution import RegularizedEvolution
from app.nas.strategies.nsga2 import NSGA2Search
from app.nas.strategies.random import RandomSearch
from app.nas.strategies.tpe import TPESearch

STRATEGIES: dict[str, type[Strategy]] = {
    RandomSearch.name: RandomSearch,
    ASHA.name: ASHA,
    "successive_halving": ASHA,
    Hyperband.name: Hyperband,
    TPESearch.name: TPESearch,
    RegularizedEvolution.name: RegularizedEvolution,
    NSGA2Search.name: NSGA2Search,
}

__all__ = [
    "ASHA",
    "STRATEGIES",
    "Decision",
    "Done",
    "Hyperband",
    "NSGA2Search",
    "NewTrial",
    "RandomSearch",
    "RegularizedEvolution",
    "SearchFailed",
    "SearchSetup",
    "Strategy",
    "TPESearch",
    "TrialView",
    "Wait",
]
