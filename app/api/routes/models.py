"""/runs/{id}/model and /runs/{id}/predict: the best model of a finished run.

Read from Postgres (run_artifacts) and cached on this host's disk by `app.runs.best_model`.
"""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from app.api.deps import OwnerDep, SessionDep, StateDep
from app.api.json_body import JsonBodyRoute
from app.api.routes.runs import PROBLEMS, load_run
from app.errors import InvalidInput
from app.nas.artifact_names import BEST_MODEL, KERAS_MEDIA_TYPE
from app.nas.columns import RowError
from app.runs.best_model import loaded_model, model_file, predictor_bundle
from app.runs.predictor_bundle import BUNDLE_MEDIA_TYPE
from app.schemas.trials import PredictRequest, PredictResponse

router = APIRouter(prefix="/runs", tags=["models"], route_class=JsonBodyRoute)

MODEL_MEDIA_TYPE = KERAS_MEDIA_TYPE


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
    run = await load_run(session, run_id, owner)
    source = await model_file(session, run, state.settings)
    return FileResponse(source.path, media_type=MODEL_MEDIA_TYPE, filename=f"{run_id}-{BEST_MODEL}")


@router.get(
    "/{run_id}/predictor",
    response_class=Response,
    responses={200: {"content": {BUNDLE_MEDIA_TYPE: {}}}, **PROBLEMS},
)
async def download_predictor(
    run_id: uuid.UUID, session: SessionDep, owner: OwnerDep, state: StateDep
) -> Response:
    """The best model as a runnable bundle that takes raw rows, strings included.

    A Python zip application: `python best.pyz rows.csv` prints one answer per CSV row
    (class labels as in the uploaded file, or values), encoding rows as `/predict` does; it
    needs numpy, keras and a Keras backend only.
    """
    run = await load_run(session, run_id, owner)
    content = await predictor_bundle(session, run, state.settings)
    disposition = f'attachment; filename="{run_id}-predictor.pyz"'
    return Response(
        content, media_type=BUNDLE_MEDIA_TYPE, headers={"Content-Disposition": disposition}
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
    loaded = await loaded_model(session, run, state.settings)
    try:
        inputs = loaded.encode(body.rows)
    except RowError as exc:
        raise InvalidInput(exc.message, field=exc.field) from exc
    predictions = await asyncio.to_thread(loaded.predict, inputs)
    return PredictResponse(
        predictions=predictions, run_id=str(run_id), trial=(run.result or {}).get("best_trial")
    )
