"""Keras neural-architecture-search engine (Cerebros algorithm).

This package import is deliberately light: it must not import keras or torch, because the
HTTP API imports `app.nas.spec` to validate requests and has to start fast. Import
`app.nas.engine` for the search itself.
"""

from app.nas.spec import Budget, DatasetOptions, NasParameters, NasSpec, SearchSpace

__all__ = ["Budget", "DatasetOptions", "NasParameters", "NasSpec", "SearchSpace"]
