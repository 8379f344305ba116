"""The predictor bundle: a downloaded `.pyz` that predicts raw rows, strings included.

A tiny network is trained on a table with a string column and missing values, exported as
the pipeline exports it, and bundled as `GET /runs/{id}/predictor` bundles it; the bundle is
then run the way a user runs it, in a fresh interpreter that has keras and numpy but none of
this package, and its answers are compared with the service's own encode-and-predict path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from app.nas.artifacts import predict_with_model
from app.nas.backend import keras
from app.nas.columns import ColumnKind, FeatureColumn, encode_rows
from app.nas.datasets import tabular_dataset
from app.nas.model_bytes import model_to_bytes
from app.nas.predictor import PACKAGE, Predictor, read_csv_rows
from app.nas.preprocessing import export_model
from app.runs.predictor_bundle import build_bundle
from tests.datasets.data import COLORS, csv_bytes, mixed_table

pytestmark = pytest.mark.slow

COLUMNS = (
    FeatureColumn("size", ColumnKind.NUMERIC),
    FeatureColumn("color", ColumnKind.CATEGORICAL, categories=COLORS),
    FeatureColumn("weight", ColumnKind.NUMERIC, missing_indicator=True),
)
LABELS = ("no", "yes")


def raw_table(table: dict[str, list[object]]) -> tuple[np.ndarray, np.ndarray]:
    rows = [dict(zip(table, values, strict=True)) for values in zip(*table.values(), strict=True)]
    features = [{c.name: row[c.name] for c in COLUMNS} for row in rows]
    y = np.asarray([LABELS.index(str(row["label"])) for row in rows], dtype=np.float64)
    return encode_rows(COLUMNS, features), y


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, keras.Model]:
    raw, y = raw_table(mixed_table(n=240))
    data = tabular_dataset("mixed", "classification", raw, y, COLUMNS, n_classes=2, labels=LABELS)
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(data.input_dim,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    network = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    network.compile(optimizer="adam", loss="binary_crossentropy")
    network.fit(data.x_train, data.y_train, epochs=20, batch_size=32, verbose=0)
    exported = export_model(network, data.preprocessing())
    prep = json.dumps(data.preprocessing().to_dict()).encode()
    path = tmp_path_factory.mktemp("bundle") / "best.pyz"
    path.write_bytes(build_bundle(model_to_bytes(exported), prep))
    return path, exported


def run_bundle(
    path: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CEREBROS_", "PYTHON"))}
    env["KERAS_BACKEND"] = "torch"
    return subprocess.run(
        [sys.executable, str(path), *args],
        env=env,
        cwd=path.parent,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_bundle_predicts_raw_csv_rows_as_the_service_does(
    bundle: tuple[Path, keras.Model],
) -> None:
    path, exported = bundle
    table = mixed_table(n=30, seed=1)
    table["color"][0] = "purple"  # never seen: "other"
    table["weight"][1] = None  # missing
    rows_csv = path.parent / "rows.csv"
    rows_csv.write_bytes(csv_bytes(table))  # the label column too: the bundle leaves it out

    proc = run_bundle(path, str(rows_csv))
    assert proc.returncode == 0, proc.stderr
    assert "ignoring column(s) the model does not take: ['label']" in proc.stderr
    header, *answers = proc.stdout.splitlines()
    assert header == "prediction"

    raw, _ = raw_table(table)
    expected = [LABELS[i] for i in predict_with_model(exported, "classification", raw)]
    assert answers == expected
    assert set(answers) == set(LABELS)  # it learned something: both classes answered


def test_the_bundle_needs_nothing_of_this_service(bundle: tuple[Path, keras.Model]) -> None:
    path, _ = bundle
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    assert {f"{PACKAGE}/__init__.py", f"{PACKAGE}/columns.py", "__main__.py"} <= names
    probe = (
        f"import sys; sys.path.insert(0, {str(path)!r}); import {PACKAGE} as p; "
        "print(p.load().predict([{'size': 12.0, 'color': 'red', 'weight': None}])); "
        "print([m for m in sys.modules if m == 'app' or m.startswith('app.')])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CEREBROS_", "PYTHON"))}
    env["KERAS_BACKEND"] = "torch"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", probe], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    answer, ours = proc.stdout.splitlines()
    assert answer in ("['no']", "['yes']")
    assert ours == "[]"


def test_bad_rows_name_the_line_and_column(bundle: tuple[Path, keras.Model]) -> None:
    path, _ = bundle
    bad_number = run_bundle(path, "-", stdin="size,color,weight\n1.5,red,heavy\n")
    assert bad_number.returncode == 2
    assert "line 2, column 'weight'" in bad_number.stderr and "not a number" in bad_number.stderr
    missing = run_bundle(path, "-", stdin="size,weight\n1.5,3\n")
    assert missing.returncode == 2 and "['color'] missing" in missing.stderr
    as_json = run_bundle(path, "--json", "-", stdin='[[9.0, "blue", 50.0], [11.0, null, null]]')
    assert as_json.returncode == 0, as_json.stderr
    assert len(as_json.stdout.splitlines()) == 3


def test_csv_rows_of_plain_numbers_may_have_a_header() -> None:
    import io

    predictor = Predictor(model=None, preprocessing={"task": "regression", "x_mean": [0, 0]})
    rows, ignored = read_csv_rows(predictor, io.StringIO("a,b\n1,2\n3,\n"))
    assert ignored == [] and rows[0] == [1.0, 2.0] and np.isnan(rows[1][1])
