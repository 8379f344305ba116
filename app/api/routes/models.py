"""/runs/{id}/model and /runs/{id}/predict: the best model of a finished run."""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.api.deps import OwnerDep, SessionDep, StateDep
from app.api.json_body import JsonBodyRoute
from app.api.routes.runs import PROBLEMS, load_run
from app.config import Settings
from app.db.models import Run, RunStatus
from app.errors import Conflict, InvalidInput, NotFound
from app.nas.artifacts import (
    BEST_MODEL,
    load_best_model,
    load_preprocessing,
    predict_with_model,
)
from app.nas.columns import Cell, RowError, encode_rows, plain_rows
from app.nas.records import Preprocessing
from app.schemas.trials import PredictRequest, PredictResponse

router = APIRouter(prefix="/runs", tags=["models"], route_class=JsonBodyRoute)

MODEL_MEDIA_TYPE = "application/octet-stream"
CACHED_MODELS = 4


def artifacts_dir(run: Run, settings: Settings) -> Path:
    """Where the run's artifacts are: as recorded in its result, else the default layout."""
    artifacts = (run.result or {}).get("artifacts") or {}
    if artifacts.get("dir"):
        return Path(artifacts["dir"])
    if artifacts.get("best_model"):
        return Path(artifacts["best_model"]).parent
    return settings.resolved_artifacts_dir / str(run.id)


def best_model_dir(run: Run, settings: Settings) -> Path:
    """The artifacts dir of a succeeded run whose model exists; 409/404 otherwise."""
    if run.status != RunStatus.SUCCEEDED:
        raise Conflict(
            f"run {run.id} is {run.status}: it has a model only once it has succeeded",
            field="run_id",
        )
    root = artifacts_dir(run, settings)
    if not (root / BEST_MODEL).is_file():
        raise NotFound(f"run {run.id} has no model file (its artifacts were removed)")
    return root


@dataclass
class LoadedModel:
    """A run's best model (a model of raw rows, as downloaded) and what it was trained on."""

    model: Any
    preprocessing: Preprocessing
    mtime: float

    @property
    def input_dim(self) -> int:
        return self.preprocessing.input_dim

    def encode(self, rows: Sequence[Sequence[Cell] | Mapping[str, Cell]]) -> np.ndarray:
        """Raw rows as the model's input (`app.nas.columns`); `RowError` names a bad cell."""
        if self.preprocessing.columns:
            return encode_rows(self.preprocessing.columns, rows)
        return plain_rows(self.input_dim, rows)

    def predict(self, inputs: np.ndarray) -> list[Any]:
        return predict_with_model(self.model, self.preprocessing.task, inputs)


def _load(root: Path) -> LoadedModel:
    return LoadedModel(
        load_best_model(root), load_preprocessing(root), (root / BEST_MODEL).stat().st_mtime
    )


class ModelCache:
    """The last few loaded models, by run; keras is imported on first use, in a thread."""

    def __init__(self, size: int = CACHED_MODELS) -> None:
        self.size = size
        self.models: OrderedDict[uuid.UUID, LoadedModel] = OrderedDict()
        self.lock = asyncio.Lock()

    async def get(self, run_id: uuid.UUID, root: Path) -> LoadedModel:
        async with self.lock:
            cached = self.models.get(run_id)
            if cached is None or cached.mtime != (root / BEST_MODEL).stat().st_mtime:
                cached = await asyncio.to_thread(_load, root)
                self.models[run_id] = cached
            self.models.move_to_end(run_id)
            while len(self.models) > self.size:
                self.models.popitem(last=False)
            return cached


MODELS = ModelCache()


@router.get(
    "/{run_id}/model",
    response_class=FileResponse,
    responses={200: {"content": {MODEL_MEDIA_TYPE: {}}}, **PROBLEMS},
)
async def download_model(
    run_id: uuid.UUID, session: SessionDep, owner: OwnerDep, state: StateDep
) -> FileResponse:
    """The best model as a `.keras` file (load it with `keras.saving.load_model`).

    It takes raw feature rows, in the dataset's column order (its first layer standardises
    them), and outputs class probabilities or regression values in the target's units.
    """
    root = best_model_dir(await load_run(session, run_id, owner), state.settings)
    return FileResponse(
        root / BEST_MODEL, media_type=MODEL_MEDIA_TYPE, filename=f"{run_id}-{BEST_MODEL}"
    )


@router.post("/{run_id}/predict", response_model=PredictResponse, responses=PROBLEMS)
async def predict(
    run_id: uuid.UUID,
    body: PredictRequest,
    session: SessionDep,
    owner: OwnerDep,
    state: StateDep,
) -> PredictResponse:
    """Predictions of the best model for raw feature rows.

    The downloadable model's outputs, as class indices (classification) or values in the
    target's units (regression).
    """
    run = await load_run(session, run_id, owner)
    root = best_model_dir(run, state.settings)
    loaded = await MODELS.get(run_id, root)
    try:
        inputs = loaded.encode(body.rows)
    except RowError as exc:
        raise InvalidInput(exc.message, field=exc.field) from exc
    predictions = await asyncio.to_thread(loaded.predict, inputs)
    return PredictResponse(
        predictions=predictions, run_id=str(run_id), trial=(run.result or {}).get("best_trial")
    )
