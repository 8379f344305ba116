"""A run's dataset in a worker process: loaded once, kept for the run's next trials."""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict

from app.datasets.service import load_run_dataset
from app.nas.datasets import Dataset, load_dataset
from app.nas.spec import NasSpec
from app.runtime import Runtime

__all__ = ["run_dataset"]

#: Runs whose arrays a worker keeps: two runs sharing the workers alternate trials, so one
#: entry would reload the data on nearly every trial.
CACHED_RUNS = 2
_cache: OrderedDict[uuid.UUID, Dataset] = OrderedDict()
_lock = asyncio.Lock()


async def run_dataset(runtime: Runtime, run_id: uuid.UUID, spec: NasSpec) -> Dataset:
    """The run's training arrays (an uploaded dataset from Postgres, or a built-in one).

    Raises `app.nas.datasets.DatasetUnavailable` when they cannot be loaded.
    """
    async with _lock:
        data = _cache.get(run_id)
        if data is not None:
            _cache.move_to_end(run_id)
            return data
        cache_dir = runtime.settings.resolved_dataset_cache_dir
        data = await load_run_dataset(runtime.sessions, spec, cache_dir)
        if data is None:
            params = spec.parameters
            data = await asyncio.to_thread(
                load_dataset,
                spec.dataset_id,
                spec.dataset_options,
                validation_split=params.validation_split,
                seed=params.seed,
                cache_dir=cache_dir,
            )
        _cache[run_id] = data
        while len(_cache) > CACHED_RUNS:
            _cache.popitem(last=False)
        return data
