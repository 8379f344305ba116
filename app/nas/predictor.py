"""The predictor a downloaded bundle runs: raw rows (strings included) in, answers out.

A Keras model on the torch backend cannot take strings (`app.nas.columns`), so the saved
``best_model.keras`` takes one number per column. The bundle (`GET /runs/{id}/predictor`,
built by `app.runs.predictor_bundle`) is a Python zip application that closes that gap
without this service: it holds the model, its ``preprocessing.json``, this module and
`app.nas.columns` (copied as the package ``cerebros_predictor``), so::

    python best.pyz rows.csv             # a CSV with a header row: one answer per row

turns raw CSV rows into the model's input exactly as ``POST /runs/{id}/predict`` does (the
same `encode_rows`), and prints each row's class label (as it was in the uploaded file) or
regression value. From Python: ``sys.path.insert(0, "best.pyz")``, then
``import cerebros_predictor; cerebros_predictor.load().predict(rows)``.

Only the standard library, numpy, keras and a Keras backend are needed, so this module
imports nothing of ``app`` but its sibling ``columns`` (relatively, so the same source works
here and inside the bundle). Keras is imported when a model is loaded.
"""

from __future__ import annotations

import argparse
import csv
import importlib.resources
import importlib.util
import io
import json
import math
import os
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .columns import Cell, ColumnKind, FeatureColumn, RowError, encode_model_input

__all__ = [
    "MODEL_FILE",
    "PREPROCESSING_FILE",
    "Predictor",
    "decode_outputs",
    "load",
    "main",
    "read_csv_rows",
]

#: The bundle's members, beside this module in the ``cerebros_predictor`` package.
MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"
PACKAGE = "cerebros_predictor"


def decode_outputs(outputs: np.ndarray, task: str) -> list[Any]:
    """Model outputs as answers: class indices (classification) or values (regression)."""
    if task == "regression":
        return [float(v) for v in outputs.reshape(-1)]
    if outputs.shape[-1] == 1:  # binary head: one sigmoid unit
        return [int(v) for v in outputs.reshape(-1) >= 0.5]
    return [int(v) for v in outputs.argmax(axis=-1)]


def _default_backend() -> None:
    # Keras falls back to TensorFlow when KERAS_BACKEND is unset; a user who has only torch
    # or jax installed should not have to know that to run the bundle.
    if "KERAS_BACKEND" in os.environ:
        return
    for backend in ("tensorflow", "torch", "jax"):
        if importlib.util.find_spec(backend) is not None:
            os.environ["KERAS_BACKEND"] = backend
            return


class Predictor:
    """A run's best model with what it needs to take raw rows.

    ``labels``: the classes as they were in the uploaded file, in the model's output order
    (empty for regression and for the built-in datasets, whose classes are their indices).
    """

    def __init__(self, model: Any, preprocessing: Mapping[str, Any]) -> None:
        self.model = model
        self.task = str(preprocessing["task"])
        self.columns = tuple(FeatureColumn.from_dict(c) for c in preprocessing.get("columns") or ())
        self.width = len(self.columns) or len(preprocessing.get("x_mean") or ())
        self.labels: list[Any] = list(preprocessing.get("labels") or ())

    @property
    def column_names(self) -> list[str]:
        """The named feature columns (empty for a model of plain number rows)."""
        return [c.name for c in self.columns]

    def encode(self, rows: Sequence[Sequence[Cell] | Mapping[str, Cell]]) -> np.ndarray:
        """Raw rows as the model's input; `RowError` names a bad row or cell."""
        return encode_model_input(self.columns, self.width, rows)

    def predict(self, rows: Sequence[Sequence[Cell] | Mapping[str, Cell]]) -> list[Any]:
        """Each row's class label (or class index without labels) or regression value.

        Rows are lists in column order or objects by column name; strings, numbers and
        None (missing), as ``POST /runs/{id}/predict`` takes them.
        """
        if not rows:
            return []
        outputs = np.asarray(self.model.predict(self.encode(rows), verbose=0))
        answers = decode_outputs(outputs, self.task)
        if self.task == "classification" and self.labels:
            return [self.labels[i] for i in answers]
        return answers


def _load_model(content: bytes) -> Any:
    _default_backend()
    import keras

    # keras loads a .keras archive from a path; the bundle may be a zip we cannot open as one.
    with tempfile.TemporaryDirectory(prefix="cerebros-predictor-") as tmp:
        path = Path(tmp) / MODEL_FILE
        path.write_bytes(content)
        return keras.saving.load_model(path)


def load(bundle: str | Path | None = None) -> Predictor:
    """The predictor in ``bundle`` (a downloaded ``.pyz``), or in this package's own bundle."""
    if bundle is None:
        files = importlib.resources.files(__package__ or PACKAGE)
        model = files.joinpath(MODEL_FILE).read_bytes()
        prep = json.loads(files.joinpath(PREPROCESSING_FILE).read_text(encoding="utf-8"))
    else:
        with zipfile.ZipFile(bundle) as archive:
            model = archive.read(f"{PACKAGE}/{MODEL_FILE}")
            prep = json.loads(archive.read(f"{PACKAGE}/{PREPROCESSING_FILE}"))
    return Predictor(_load_model(model), prep)


def _cell(column: FeatureColumn, text: str, where: str) -> Cell:
    if text == "":
        return None
    if column.kind == ColumnKind.NUMERIC:
        try:
            return float(text)
        except ValueError:
            message = f"column {column.name!r} is numeric: {text!r} is not a number"
            raise RowError(where, message) from None
    return text


def read_csv_rows(predictor: Predictor, source: TextIO) -> tuple[list[Any], list[str]]:
    """CSV text as rows for ``predictor``, and the header's columns it does not use.

    Named columns: a header row is required; columns the model does not know (the target,
    an id) are left out; a model column missing from the header is an error. An empty cell
    is a missing value. Plain number rows (built-in datasets): a first row that is not all
    numbers is taken as a header.
    """
    reader = csv.reader(source)
    if not predictor.columns:
        rows: list[Any] = []
        for r, record in enumerate(reader):
            try:
                rows.append([float(v) if v != "" else math.nan for v in record])
            except ValueError:
                if r == 0:
                    continue  # a header
                raise RowError(f"line {r + 1}", f"not a row of numbers: {record!r}") from None
        return rows, []
    header = next(reader, None)
    if header is None:
        raise RowError("header", "the CSV is empty: a header row naming the columns is needed")
    by_name = {c.name: c for c in predictor.columns}
    missing = [name for name in by_name if name not in header]
    if missing:
        raise RowError("header", f"column(s) {missing} missing; the model takes {list(by_name)}")
    used = [(i, by_name[name]) for i, name in enumerate(header) if name in by_name]
    named_rows: list[dict[str, Cell]] = []
    for r, record in enumerate(reader):
        if len(record) != len(header):
            raise RowError(f"line {r + 2}", f"{len(record)} cells; the header has {len(header)}")
        named_rows.append(
            {c.name: _cell(c, record[i], f"line {r + 2}, column {c.name!r}") for i, c in used}
        )
    return named_rows, [name for name in header if name not in by_name]


def main(argv: Sequence[str] | None = None) -> int:
    """``python best.pyz ROWS.csv``: print ``prediction`` and one answer per row, as CSV."""
    parser = argparse.ArgumentParser(
        prog="python best.pyz",
        description="Predict raw rows with a Cerebros run's best model (this bundle).",
    )
    parser.add_argument("rows", help="a CSV file of raw rows with a header row, or - for stdin")
    parser.add_argument(
        "--json", action="store_true", help="ROWS is a JSON list of rows (lists or objects)"
    )
    args = parser.parse_args(argv)
    source = sys.stdin if args.rows == "-" else open(args.rows, encoding="utf-8", newline="")  # noqa: SIM115
    predictor = load()
    try:
        with source:
            if args.json:
                rows = json.load(source)
            else:
                rows, ignored = read_csv_rows(predictor, source)
                if ignored:
                    print(f"ignoring column(s) the model does not take: {ignored}", file=sys.stderr)
        answers = predictor.predict(rows)
    except RowError as err:
        print(f"error: {err.field}: {err.message}", file=sys.stderr)
        return 2
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["prediction"])
    writer.writerows([a] for a in answers)
    sys.stdout.write(out.getvalue())
    return 0
