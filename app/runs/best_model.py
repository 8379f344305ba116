"""A succeeded run's best model, as the API serves it (download and predict).

The model and its preprocessing are read from Postgres (`app.runs.artifacts`), so an API on
any host serves any worker's run. What is read is cached on this host's disk, content-
addressed: ``<model cache>/<run id>/<sha256 of the model>/`` holds ``best_model.keras`` and
``preprocessing.json``, the layout of a run's artifacts folder, written atomically (a
temporary file renamed), so API processes sharing the folder never see half a file. A
newer model of the run replaces the older folder; a run whose artifacts were deleted has
its folder removed on the next request. Loaded models are kept in a small in-process LRU
by (run id, sha256), so predict does not reload them per request.

Runs whose artifacts were written only to disk (before run_artifacts existed) are served
from their artifacts folder, as before: a run without a ``best_model.keras`` row is looked
up there.

Keras is imported only when a model is first loaded (`app.nas.artifacts`), in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.models import Run, RunStatus
from app.errors import Conflict, NotFound
from app.nas.artifact_names import BEST_MODEL, PREPROCESSING
from app.nas.artifacts import load_best_model, load_preprocessing, predict_with_model
from app.nas.columns import Cell, encode_model_input
from app.nas.records import Preprocessing
from app.runs.artifacts import artifact_info, get_artifact
from app.runs.predictor_bundle import build_bundle

__all__ = [
    "CACHED_MODELS",
    "LoadedModel",
    "LoadedModels",
    "ModelSource",
    "legacy_artifacts_dir",
    "loaded_model",
    "model_file",
    "predictor_bundle",
]

#: Loaded models kept per API process.
CACHED_MODELS = 4


@dataclass(frozen=True)
class ModelSource:
    """Where a run's best model is on this host, and which version it is.

    ``root`` is a folder laid out like a run's artifacts (``best_model.keras``, and
    ``preprocessing.json`` once `loaded_model` needed it). ``version`` is the model's
    sha256 when it comes from Postgres, ``disk:<mtime in ns>`` for an older run's file.
    """

    run_id: uuid.UUID
    root: Path
    version: str
    stored: bool  # from Postgres (cached here), not an older run's artifacts folder

    @property
    def path(self) -> Path:
        return self.root / BEST_MODEL


def legacy_artifacts_dir(run: Run, settings: Settings) -> Path:
    """Where an older run's artifacts are: as recorded in its result, else the default layout."""
    artifacts = (run.result or {}).get("artifacts") or {}
    if artifacts.get("dir"):
        return Path(artifacts["dir"])
    if artifacts.get("best_model"):
        return Path(artifacts["best_model"]).parent
    return settings.resolved_artifacts_dir / str(run.id)


def _require_succeeded(run: Run) -> None:
    if run.status != RunStatus.SUCCEEDED:
        raise Conflict(
            f"run {run.id} is {run.status}: it has a model only once it has succeeded",
            field="run_id",
        )


def _no_model(run: Run) -> NotFound:
    return NotFound(f"run {run.id} has no model file (its artifacts were removed)")


def _write_atomically(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` so that readers see the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _keep_only(run_dir: Path, version: str) -> None:
    """Remove the run's cached folders of other versions (older models)."""
    for other in run_dir.iterdir():
        if other.name != version and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)


def _cache_model(run_dir: Path, sha256: str, content: bytes) -> Path:
    root = run_dir / sha256
    _write_atomically(root / BEST_MODEL, content)
    _keep_only(run_dir, sha256)
    return root


async def _stored_source(session: AsyncSession, run: Run, settings: Settings) -> ModelSource | None:
    """The run's model from Postgres, cached on this host; None if Postgres has none."""
    run_dir = settings.resolved_model_cache_dir / str(run.id)
    info = await artifact_info(session, run.id, BEST_MODEL)
    if info is None:
        if run_dir.exists():  # the run's artifacts were deleted: so is the cached copy
            await asyncio.to_thread(shutil.rmtree, run_dir, True)
        return None
    root = run_dir / info.sha256
    if not (root / BEST_MODEL).is_file():
        stored = await get_artifact(session, run.id, BEST_MODEL)
        if stored is None:  # deleted between the two reads
            return None
        sha256 = hashlib.sha256(stored.content).hexdigest()
        if sha256 != stored.sha256:
            raise RuntimeError(f"run {run.id}'s {BEST_MODEL} does not match its sha256")
        root = await asyncio.to_thread(_cache_model, run_dir, sha256, stored.content)
        return ModelSource(run.id, root, sha256, stored=True)
    return ModelSource(run.id, root, info.sha256, stored=True)


async def model_file(session: AsyncSession, run: Run, settings: Settings) -> ModelSource:
    """The best model of a succeeded run, as a file on this host.

    From Postgres (cached), else from an older run's artifacts folder. 409 if the run has
    not succeeded, 404 if it has no model.
    """
    _require_succeeded(run)
    source = await _stored_source(session, run, settings)
    if source is not None:
        return source
    root = legacy_artifacts_dir(run, settings)
    try:
        mtime = (root / BEST_MODEL).stat().st_mtime_ns
    except OSError:
        raise _no_model(run) from None
    return ModelSource(run.id, root, f"disk:{mtime}", stored=False)


@dataclass
class LoadedModel:
    """A run's best model (a model of raw rows, as downloaded) and what it was trained on."""

    model: Any
    preprocessing: Preprocessing

    @property
    def input_dim(self) -> int:
        return self.preprocessing.input_dim

    def encode(self, rows: Sequence[Sequence[Cell] | Mapping[str, Cell]]) -> np.ndarray:
        """Raw rows as the model's input (`app.nas.columns`); `RowError` names a bad cell."""
        return encode_model_input(self.preprocessing.columns, self.input_dim, rows)

    def predict(self, inputs: np.ndarray) -> list[Any]:
        return predict_with_model(self.model, self.preprocessing.task, inputs)


def _load(root: Path) -> LoadedModel:
    return LoadedModel(load_best_model(root), load_preprocessing(root))


class LoadedModels:
    """The last few loaded models, by (run id, version); keras loads them in a thread."""

    def __init__(self, size: int = CACHED_MODELS) -> None:
        self.size = size
        self.models: OrderedDict[tuple[uuid.UUID, str], LoadedModel] = OrderedDict()
        self.lock = asyncio.Lock()

    def _keep(self, key: tuple[uuid.UUID, str], model: LoadedModel) -> None:
        for older in [k for k in self.models if k[0] == key[0] and k != key]:
            del self.models[older]  # a run's replaced model is never asked for again
        self.models[key] = model
        self.models.move_to_end(key)
        while len(self.models) > self.size:
            self.models.popitem(last=False)

    async def get(self, session: AsyncSession, source: ModelSource) -> LoadedModel:
        """The model of ``source``, loaded once per version."""
        key = (source.run_id, source.version)
        async with self.lock:
            cached = self.models.get(key)
            if cached is None:
                if source.stored:
                    await _cache_preprocessing(session, source)
                cached = await asyncio.to_thread(_load, source.root)
            self._keep(key, cached)
            return cached


async def _cache_preprocessing(session: AsyncSession, source: ModelSource) -> None:
    """Put the run's preprocessing from Postgres beside its cached model (once)."""
    path = source.root / PREPROCESSING
    if path.is_file():
        return
    stored = await get_artifact(session, source.run_id, PREPROCESSING)
    if stored is None:
        raise NotFound(f"run {source.run_id} has no {PREPROCESSING} (its artifacts are partial)")
    json.loads(stored.content)  # a bad file fails here, not as a cached one
    await asyncio.to_thread(_write_atomically, path, stored.content)


MODELS = LoadedModels()


async def predictor_bundle(session: AsyncSession, run: Run, settings: Settings) -> bytes:
    """The run's best model as a predictor bundle (`app.runs.predictor_bundle`).

    409/404 as `model_file`; 409 too for a run saved before models carried their
    preprocessing (its bare network needs this service's wrapping: use ``/predict``).
    """
    source = await model_file(session, run, settings)
    if source.stored:
        await _cache_preprocessing(session, source)
    prep_path = source.root / PREPROCESSING
    if not prep_path.is_file():
        raise _no_model(run)
    prep = await asyncio.to_thread(prep_path.read_bytes)
    if not Preprocessing.from_dict(json.loads(prep)).in_model:
        raise Conflict(
            f"run {run.id}'s model predates models with their preprocessing: use "
            "POST /runs/{id}/predict"
        )
    model = await asyncio.to_thread(source.path.read_bytes)
    return await asyncio.to_thread(build_bundle, model, prep)


async def loaded_model(
    session: AsyncSession, run: Run, settings: Settings, models: LoadedModels = MODELS
) -> LoadedModel:
    """The loaded best model of a succeeded run (409/404 as `model_file`)."""
    return await models.get(session, await model_file(session, run, settings))
