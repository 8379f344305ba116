"""Search strategies, by the name used in ``parameters.strategy``."""

from __future__ import annotations

from app.nas.strategies.base import SearchContext, SearchFailed, Strategy
from app.nas.strategies.random import RandomSearch
from app.nas.strategies.successive_halving import SuccessiveHalving

STRATEGIES: dict[str, type[Strategy]] = {
    RandomSearch.name: RandomSearch,
    SuccessiveHalving.name: SuccessiveHalving,
}

__all__ = [
    "STRATEGIES",
    "RandomSearch",
    "SearchContext",
    "SearchFailed",
    "Strategy",
    "SuccessiveHalving",
]
