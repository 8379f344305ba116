"""Small datasets made in the tests: a CSV with a string column and missing values, the
same table as Parquet, and an npz of arrays."""

from __future__ import annotations

import io

import numpy as np

COLORS = ("red", "green", "blue")


def mixed_table(n: int = 240, seed: int = 0) -> dict[str, list[object]]:
    """Columns size (numeric), color (strings), weight (numeric, some missing), label.

    The label follows color and size, so a tiny network learns it.
    """
    rng = np.random.default_rng(seed)
    size = rng.normal(10, 3, n).round(3)
    color = rng.choice(COLORS, n)
    weight = rng.normal(50, 5, n).round(2)
    label = np.where((color == "red") ^ (size > 10), "yes", "no")
    return {
        "size": size.tolist(),
        "color": color.tolist(),
        "weight": [None if i % 13 == 0 else float(w) for i, w in enumerate(weight)],
        "label": label.tolist(),
    }


def csv_bytes(table: dict[str, list[object]]) -> bytes:
    names = list(table)
    lines = [",".join(names)]
    for row in zip(*table.values(), strict=True):
        lines.append(",".join("" if v is None else str(v) for v in row))
    return ("\n".join(lines) + "\n").encode()


def parquet_bytes(table: dict[str, list[object]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table(table), sink)
    return sink.getvalue()


def npz_bytes(n: int = 200, seed: int = 0, regression: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    x[3, 1] = np.nan  # a missing value
    y = x[:, 0] * 2 + 1 if regression else (x[:, 0] + x[:, 2] > 0).astype(np.int64)
    sink = io.BytesIO()
    np.savez(sink, x=x, y=y)
    return sink.getvalue()
