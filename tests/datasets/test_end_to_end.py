"""Uploaded datasets searched end to end: a real API and a real worker, which reads the
dataset from Postgres; the downloaded model answers raw rows as /predict does."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import cli
from tests.datasets.data import csv_bytes, mixed_table, npz_bytes, parquet_bytes
from tests.support.postgres import migrated_database
from tests.support.processes import api_server, service_env, wait_final, worker_process

pytestmark = pytest.mark.slow

SEARCH = {
    "search_space": {"layers": [1], "neurons": [8]},
    "budget": {"max_trials": 1},
    "parameters": {"epochs": 2, "batch_size": 16},
}


@pytest.fixture(scope="module")
def database_url(admin_url: str) -> Iterator[str]:
    """This module's own database: the worker takes every queued job it finds."""
    yield from migrated_database(admin_url, prefix="cerebros_mod")


@pytest.fixture(scope="module")
def base(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("datasets")
    env = service_env(
        database_url,
        CEREBROS_ARTIFACTS_DIR=str(root / "artifacts"),
        # The worker's own cache: the file can only come from Postgres.
        CEREBROS_DATASET_CACHE_DIR=str(root / "worker-cache"),
    )
    with api_server(env, root) as url, worker_process(env, root):
        yield url


def upload(base: str, content: bytes, filename: str, **fields: str) -> dict[str, Any]:
    response = httpx.post(
        f"{base}/datasets", files={"file": (filename, content)}, data=fields, timeout=60
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def submit(base: str, dataset_id: str) -> str:
    response = httpx.post(f"{base}/runs", json={"dataset_id": dataset_id, **SEARCH}, timeout=30)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def encode(dataset: dict[str, Any], row: dict[str, Any]) -> list[float]:
    """A raw row as the downloaded model takes it, from the dataset's schema alone (the
    README's recipe): numbers as they are, a string as its category's position, NaN for
    missing or unknown."""
    out: list[float] = []
    for column in dataset["columns"]:
        value = row.get(column["name"])
        if value is None:
            out.append(math.nan)
        elif column["type"] == "categorical" and isinstance(value, str):
            categories = column["categories"]
            out.append(float(categories.index(value)) if value in categories else math.nan)
        else:
            out.append(float(value))
    return out


def decode(outputs: np.ndarray, task: str) -> list[Any]:
    if task == "regression":
        return [float(v) for v in outputs.reshape(-1)]
    if outputs.shape[-1] == 1:
        return [int(v) for v in outputs.reshape(-1) >= 0.5]
    return [int(v) for v in outputs.argmax(axis=-1)]


def test_each_format_is_searched_and_its_model_predicts_raw_rows(base: str, tmp_path: Path) -> None:
    table = mixed_table(n=240)
    datasets = [
        upload(base, csv_bytes(table), "mixed.csv", target="label"),
        upload(base, parquet_bytes(table), "mixed.parquet", target="label"),
        upload(base, npz_bytes(regression=True), "arrays.npz", task="regression"),
    ]
    runs = [submit(base, d["id"]) for d in datasets]
    # Queued or running: the dataset cannot go.
    busy = httpx.delete(f"{base}/datasets/{datasets[0]['id']}", timeout=30)
    assert busy.status_code == 409, busy.text

    finals = [wait_final(base, run_id, timeout=400) for run_id in runs]
    for final in finals:
        assert final["status"] == "succeeded", final.get("error")

    from app.nas.backend import keras  # the user's side: keras and a backend only

    csv_dataset, csv_run = datasets[0], runs[0]
    names = [c["name"] for c in csv_dataset["columns"]]
    rows = [dict(zip(table, values, strict=True)) for values in zip(*table.values(), strict=True)]
    raw = [{name: row[name] for name in names} for row in rows[:20]]
    raw[0]["color"] = "purple"  # a category never seen: "other"
    raw[1]["weight"] = None  # missing
    raw[2]["size"] = None
    as_lists = [[row[name] for name in names] for row in raw]
    by_list = httpx.post(f"{base}/runs/{csv_run}/predict", json={"rows": as_lists}, timeout=60)
    by_name = httpx.post(f"{base}/runs/{csv_run}/predict", json={"rows": raw}, timeout=60)
    assert by_list.status_code == 200, by_list.text
    assert by_list.json()["predictions"] == by_name.json()["predictions"]

    model_file = tmp_path / "best.keras"
    model_file.write_bytes(httpx.get(f"{base}/runs/{csv_run}/model", timeout=60).content)
    model = keras.saving.load_model(model_file)
    inputs = np.asarray([encode(csv_dataset, row) for row in raw], dtype=np.float32)
    outputs = np.asarray(model.predict(inputs, verbose=0))
    assert not np.isnan(outputs).any()
    assert decode(outputs, "classification") == by_list.json()["predictions"]

    # The predictor bundle, downloaded with the CLI, takes the raw CSV rows themselves
    # (strings, empty cells, the target column) and answers with the file's labels.
    bundle = tmp_path / "best.pyz"
    cli_args = ["model", csv_run[:8], "--predictor", "-o", str(bundle), "--url", base]
    downloaded = CliRunner().invoke(cli, cli_args)
    assert downloaded.exit_code == 0, downloaded.output
    rows_csv = tmp_path / "rows.csv"
    rows_csv.write_bytes(csv_bytes({name: [row.get(name) for row in raw] for name in table}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CEREBROS_", "PYTHON"))}
    proc = subprocess.run(
        [sys.executable, str(bundle), str(rows_csv)],
        env={**env, "KERAS_BACKEND": "torch"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    labels = [c["label"] for c in csv_dataset["target_summary"]["classes"]]
    expected = [labels[i] for i in by_list.json()["predictions"]]
    assert proc.stdout.splitlines() == ["prediction", *expected]

    bad = httpx.post(f"{base}/runs/{csv_run}/predict", json={"rows": [[1, 2, "x"]]}, timeout=30)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "rows.0.2"

    npz_run = runs[2]
    x = np.load(io.BytesIO(npz_bytes(regression=True)))["x"][:10]
    rows_x = [[None if math.isnan(v) else float(v) for v in row] for row in x]
    answer = httpx.post(f"{base}/runs/{npz_run}/predict", json={"rows": rows_x}, timeout=60)
    assert answer.status_code == 200, answer.text
    npz_file = tmp_path / "npz.keras"
    npz_file.write_bytes(httpx.get(f"{base}/runs/{npz_run}/model", timeout=60).content)
    direct = np.asarray(keras.saving.load_model(npz_file).predict(x, verbose=0)).reshape(-1)
    assert np.allclose(direct, answer.json()["predictions"], rtol=1e-4, atol=1e-4)

    done = httpx.delete(f"{base}/datasets/{datasets[0]['id']}", timeout=30)
    assert done.status_code == 204
