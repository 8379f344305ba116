"""GET /runs/{id}/model and POST /predict from Postgres (run_artifacts), with no artifacts folder.

A tiny real Keras model, exported as a worker exports the best one (preprocessing layers
included), is stored with `put_artifact`; the API has an empty artifacts folder and serves
it from Postgres, caching it on its own disk. Older runs, whose files are only on disk, are
still served from there.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.main import create_app
from app.auth.tokens import hash_token, new_token
from app.config import Settings
from app.nas.artifact_names import BEST_MODEL, PREPROCESSING
from app.nas.records import Preprocessing
from app.runs import best_model
from app.runs.artifacts import delete_artifacts, put_artifact

pytestmark = pytest.mark.postgres

Sessions = async_sessionmaker[AsyncSession]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [4.4, 2.9, 1.4, 0.2]]


@dataclass(frozen=True)
class TinyModel:
    content: bytes  # the .keras file
    preprocessing: Preprocessing
    outputs: np.ndarray  # what it answers for ROWS

    @property
    def classes(self) -> list[int]:
        return [int(c) for c in self.outputs.argmax(axis=1)]


def tiny_model(folder: Path, seed: int) -> TinyModel:
    """A small real network, exported as `ArtifactStore.save_best` exports the best one."""
    from app.nas.backend import keras
    from app.nas.preprocessing import export_model

    keras.utils.set_random_seed(seed)
    prep = Preprocessing(
        dataset="iris",
        task="classification",
        n_classes=3,
        x_mean=[5.8, 3.0, 3.7, 1.2],
        x_std=[0.8, 0.4, 1.7, 0.7],
    )
    inputs = keras.Input(shape=(4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    network = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    exported = export_model(network, prep)
    path = folder / f"model-{seed}.keras"
    exported.save(path)
    outputs = np.asarray(exported.predict(np.asarray(ROWS, dtype=np.float32), verbose=0))
    return TinyModel(path.read_bytes(), prep, outputs)


def issue_token(database_url: str, owner: str) -> dict[str, str]:
    token_id, token = new_token()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO api_tokens (id, token_hash, owner, admin) VALUES (%s, %s, %s, false)",
            (token_id, hash_token(token), owner),
        )
    return {"Authorization": f"Bearer {token}"}


def insert_run(database_url: str, owner: str, result: dict[str, Any] | None = None) -> uuid.UUID:
    run_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (id, owner, status, spec, result) "
            "VALUES (%s, %s, 'succeeded', %s, %s)",
            (run_id, owner, json.dumps({"dataset_id": "iris"}), json.dumps(result or {})),
        )
    return run_id


async def store(sessions: Sessions, run_id: uuid.UUID, model: TinyModel) -> None:
    """What the pipeline stores of a finished run (the parts the API reads)."""
    async with sessions.begin() as session:
        await put_artifact(session, run_id, BEST_MODEL, model.content)
        prep = json.dumps(model.preprocessing.to_dict()).encode()
        await put_artifact(session, run_id, PREPROCESSING, prep, "application/json")


@dataclass(frozen=True)
class Api:
    client: TestClient
    settings: Settings
    alice: dict[str, str]
    bob: dict[str, str]
    owner: str


@pytest.fixture(scope="module")
def api(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api-host")
    settings = Settings(
        database_url=database_url,
        auth_enabled=True,
        max_body_bytes=16 * 1024,
        artifacts_dir=root / "artifacts",  # empty: this host has no worker's files
        model_cache_dir=root / "cache",
    )
    owner = f"alice-{uuid.uuid4().hex[:8]}"
    alice = issue_token(database_url, owner)
    bob = issue_token(database_url, f"bob-{uuid.uuid4().hex[:8]}")
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings, alice, bob, owner)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyModel, TinyModel]:
    folder = tmp_path_factory.mktemp("tiny-models")
    return tiny_model(folder, 1), tiny_model(folder, 2)


class CountingLoads:
    """Counts the models `app.runs.best_model` loads (keras), for the in-process LRU."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.roots: list[Path] = []
        real = best_model._load

        def load(root: Path) -> best_model.LoadedModel:
            self.roots.append(root)
            return real(root)

        monkeypatch.setattr(best_model, "_load", load)


async def test_a_model_only_in_postgres_is_downloaded_and_predicted(
    api: Api,
    models: tuple[TinyModel, TinyModel],
    session_factory: Sessions,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = models[0]
    run_id = insert_run(database_url, api.owner)
    await store(session_factory, run_id, model)
    loads = CountingLoads(monkeypatch)

    download = api.client.get(f"/runs/{run_id}/model", headers=api.alice)
    assert download.status_code == 200, download.text
    assert download.content == model.content
    assert download.headers["content-type"] == "application/octet-stream"
    assert f'filename="{run_id}-{BEST_MODEL}"' in download.headers["content-disposition"]
    assert not (api.settings.resolved_artifacts_dir / str(run_id)).exists()
    sha = hashlib.sha256(model.content).hexdigest()
    cached = api.settings.resolved_model_cache_dir / str(run_id) / sha / BEST_MODEL
    assert cached.read_bytes() == model.content

    for _ in range(3):
        answer = api.client.post(f"/runs/{run_id}/predict", json={"rows": ROWS}, headers=api.alice)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == model.classes
    assert loads.roots == [cached.parent]  # loaded once, then from the LRU

    # Another host's cache is empty: the same answers, read from Postgres again.
    cached.unlink()
    again = api.client.get(f"/runs/{run_id}/model", headers=api.alice)
    assert again.content == model.content and cached.is_file()


async def test_a_replaced_model_is_served_and_the_old_one_dropped(
    api: Api,
    models: tuple[TinyModel, TinyModel],
    session_factory: Sessions,
    database_url: str,
) -> None:
    first, second = models
    assert first.classes != second.classes or not np.allclose(first.outputs, second.outputs)
    run_id = insert_run(database_url, api.owner)
    await store(session_factory, run_id, first)
    answer = api.client.post(f"/runs/{run_id}/predict", json={"rows": ROWS}, headers=api.alice)
    assert answer.json()["predictions"] == first.classes

    await store(session_factory, run_id, second)
    answer = api.client.post(f"/runs/{run_id}/predict", json={"rows": ROWS}, headers=api.alice)
    assert answer.json()["predictions"] == second.classes
    run_cache = api.settings.resolved_model_cache_dir / str(run_id)
    assert [p.name for p in run_cache.iterdir()] == [hashlib.sha256(second.content).hexdigest()]
    download = api.client.get(f"/runs/{run_id}/model", headers=api.alice)
    assert download.content == second.content


async def test_another_owner_gets_404_and_deleted_artifacts_are_gone(
    api: Api,
    models: tuple[TinyModel, TinyModel],
    session_factory: Sessions,
    database_url: str,
) -> None:
    run_id = insert_run(database_url, api.owner)
    await store(session_factory, run_id, models[0])
    body = {"rows": ROWS}
    assert api.client.get(f"/runs/{run_id}/model", headers=api.alice).status_code == 200
    assert api.client.post(f"/runs/{run_id}/predict", json=body, headers=api.alice).is_success

    assert api.client.get(f"/runs/{run_id}/model", headers=api.bob).status_code == 404
    assert api.client.post(f"/runs/{run_id}/predict", json=body, headers=api.bob).status_code == 404

    async with session_factory.begin() as session:
        assert await delete_artifacts(session, run_id) == 2
    download = api.client.get(f"/runs/{run_id}/model", headers=api.alice)
    assert download.status_code == 404
    assert download.json()["status"] == 404
    predict = api.client.post(f"/runs/{run_id}/predict", json=body, headers=api.alice)
    assert predict.status_code == 404  # not from the LRU, though the model is loaded there
    assert not (api.settings.resolved_model_cache_dir / str(run_id)).exists()


async def test_a_model_without_its_preprocessing_is_a_404_on_predict(
    api: Api,
    models: tuple[TinyModel, TinyModel],
    session_factory: Sessions,
    database_url: str,
) -> None:
    run_id = insert_run(database_url, api.owner)
    async with session_factory.begin() as session:
        await put_artifact(session, run_id, BEST_MODEL, models[0].content)
    assert api.client.get(f"/runs/{run_id}/model", headers=api.alice).status_code == 200
    answer = api.client.post(f"/runs/{run_id}/predict", json={"rows": ROWS}, headers=api.alice)
    assert answer.status_code == 404
    assert PREPROCESSING in answer.json()["detail"]


def test_a_run_whose_files_are_only_on_disk_is_still_served(
    api: Api, models: tuple[TinyModel, TinyModel], database_url: str
) -> None:
    model = models[1]
    run_id = insert_run(database_url, api.owner)  # no rows in run_artifacts
    folder = api.settings.resolved_artifacts_dir / str(run_id)  # the default layout
    folder.mkdir(parents=True)
    (folder / BEST_MODEL).write_bytes(model.content)
    (folder / PREPROCESSING).write_text(json.dumps(model.preprocessing.to_dict()))

    download = api.client.get(f"/runs/{run_id}/model", headers=api.alice)
    assert download.status_code == 200 and download.content == model.content
    answer = api.client.post(f"/runs/{run_id}/predict", json={"rows": ROWS}, headers=api.alice)
    assert answer.json()["predictions"] == model.classes
    assert not (api.settings.resolved_model_cache_dir / str(run_id)).exists()

    (folder / BEST_MODEL).unlink()  # removed: a 404, as before
    assert api.client.get(f"/runs/{run_id}/model", headers=api.alice).status_code == 404


def test_a_run_that_has_not_succeeded_has_no_model(api: Api, database_url: str) -> None:
    run_id = insert_run(database_url, api.owner)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE runs SET status = 'running' WHERE id = %s", (run_id,))
    assert api.client.get(f"/runs/{run_id}/model", headers=api.alice).status_code == 409
