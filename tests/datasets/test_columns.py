"""Raw rows as the model's input (app/nas/columns.py) and the features the exported model
makes of them (app/nas/preprocessing.py), without a database."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.nas.columns import ColumnKind, FeatureColumn, RowError, encode_rows, plain_rows

COLUMNS = (
    FeatureColumn("size", ColumnKind.NUMERIC, mean=10.0, std=2.0, missing_indicator=True),
    FeatureColumn("color", ColumnKind.CATEGORICAL, categories=("red", "green", "3")),
    FeatureColumn("zip", ColumnKind.CATEGORICAL, categories=(1000.0, 2000.0), numeric_keys=True),
)


def test_rows_in_order_or_by_name_encode_alike() -> None:
    lists = encode_rows(COLUMNS, [[12, "green", 2000], [None, "purple", 5], [1.5, 3, None]])
    names = encode_rows(
        COLUMNS,
        [
            {"size": 12, "color": "green", "zip": 2000},
            {"color": "purple", "zip": 5},
            {"size": 1.5, "color": 3, "zip": None},
        ],
    )
    assert np.array_equal(lists, names, equal_nan=True)
    assert lists[0].tolist() == [12.0, 1.0, 2000.0]
    assert math.isnan(lists[1, 0]) and math.isnan(lists[1, 1]) and lists[1, 2] == 5.0
    assert lists[2, 1] == 2.0  # the number 3 is the category "3"


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        ([[1, "red"]], "rows"),
        ([["big", "red", 1000]], "rows.0.0"),
        ([[True, "red", 1000]], "rows.0.0"),
        ([{"size": 1, "shape": "round"}], "rows.0"),
    ],
)
def test_bad_rows_name_the_cell(rows: list[object], field: str) -> None:
    with pytest.raises(RowError) as err:
        encode_rows(COLUMNS, rows)  # type: ignore[arg-type]
    assert err.value.field == field


def test_models_of_the_built_in_datasets_take_numbers_only() -> None:
    assert plain_rows(2, [[1, 2.5]]).tolist() == [[1.0, 2.5]]
    for rows, field in (([["1.5", 2]], "rows.0.0"), ([[1]], "rows"), ([{"a": 1}], "rows.0")):
        with pytest.raises(RowError) as err:
            plain_rows(2, rows)  # type: ignore[arg-type]
        assert err.value.field == field


def test_the_features_impute_flag_and_one_hot() -> None:
    from app.nas.preprocessing import tabular_transform

    raw = encode_rows(COLUMNS, [[12, "green", 2000], [None, None, 1000], [10, "blue", 7]])
    features = tabular_transform(COLUMNS, raw)
    # size (standardised), its missing flag, color one-hot + other, zip one-hot + other
    assert features.tolist() == [
        [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0],
    ]
