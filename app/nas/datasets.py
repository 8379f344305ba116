"""In-memory datasets for the search: sklearn built-ins, synthetic, and keras downloads.

Keras datasets (mnist, fashion_mnist, cifar10) go through keras' own cache and download code,
``keras.utils.get_file``, with an explicit ``cache_dir``: files live at
``<cache_dir>/datasets/<file>`` exactly where ``keras.datasets.<name>.load_data()`` puts
them when ``KERAS_HOME=<cache_dir>``. We do not call ``load_data()`` itself because (a) it
has no ``cache_dir`` argument (keras reads ``KERAS_HOME`` once, at import), and (b)
``mnist.load_data`` checks a sha256 and, on a mismatch, re-downloads and *deletes the cached
file* when the download fails, so an offline mirror (or a test fixture) can never be read.
The arrays are then parsed the way keras parses them.

When the files are not cached and the origin host is unreachable we raise
`DatasetUnavailable` after a short probe instead of letting urllib hang.
"""

from __future__ import annotations

import gzip
import os
import socket
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from app.nas.backend import keras
from app.nas.columns import ColumnKind, FeatureColumn
from app.nas.preprocessing import (
    FEATURES_LAYER,
    TARGET_LAYER,
    standardize,
    standardizer,
    tabular_transform,
)
from app.nas.records import Preprocessing
from app.nas.spec import DATASET_TASKS, DatasetOptions, Task

__all__ = [
    "Dataset",
    "DatasetUnavailable",
    "cached_dataset",
    "clear_dataset_cache",
    "load_dataset",
    "tabular_dataset",
]

PROBE_TIMEOUT_S = 3.0
_KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
_CIFAR_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CACHE_LIMIT = 4  # datasets kept in memory; a run uses one, tests a few


class DatasetUnavailable(RuntimeError):
    """The dataset is neither cached locally nor downloadable (e.g. no internet)."""


@dataclass(frozen=True)
class Dataset:
    """Split, standardised arrays ready for ``model.fit``.

    Features are standardised with train statistics (``x_mean``/``x_std``); regression
    targets too (``y_mean``/``y_std``), so losses are in standard units across datasets.
    Both go through the layers of `app.nas.preprocessing`, which the exported model carries.
    An uploaded table has ``columns`` instead (`app.nas.columns`): its arrays are the
    features `app.nas.preprocessing.tabular_features` makes of the raw columns.
    """

    name: str
    task: Task
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    x_mean: np.ndarray = field(repr=False)
    x_std: np.ndarray = field(repr=False)
    y_mean: float = 0.0
    y_std: float = 1.0
    columns: tuple[FeatureColumn, ...] = ()
    labels: tuple[str | int | float, ...] = ()

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    def preprocessing(self) -> Preprocessing:
        """The transformations between raw rows and this dataset's arrays (for export)."""
        return Preprocessing(
            dataset=self.name,
            task=self.task,
            n_classes=self.n_classes,
            x_mean=[float(v) for v in self.x_mean],
            x_std=[float(v) for v in self.x_std],
            y_mean=self.y_mean,
            y_std=self.y_std,
            columns=self.columns,
            labels=self.labels,
        )


_cache: OrderedDict[tuple[object, ...], Dataset] = OrderedDict()
_cache_lock = threading.Lock()


def clear_dataset_cache() -> None:
    """Forget every in-process cached dataset."""
    with _cache_lock:
        _cache.clear()


def default_cache_dir() -> Path:
    """Keras' default home, ``~/.keras``: the cache when none is given.

    The service gives `Settings.resolved_dataset_cache_dir` (CEREBROS_DATASET_CACHE_DIR,
    else KERAS_HOME, else this).
    """
    return Path("~/.keras").expanduser()


def _reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the host of ``url`` accepts a TCP connection within ``timeout`` seconds.

    DNS resolution has no timeout of its own, so the probe runs in a daemon thread.
    """
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((parts.hostname or "", port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _fetch(fname: str, origin: str, cache_dir: Path, subdir: str, allow_download: bool) -> str:
    """Path of a cached keras dataset file, downloading it with keras if possible."""
    target = cache_dir / subdir / fname
    if not target.exists() and (not allow_download or not _reachable(origin)):
        raise DatasetUnavailable(
            f"dataset file {target} is not cached and {origin} cannot be downloaded "
            "(no network access?). Put the file there or point the dataset cache "
            "directory (CEREBROS_DATASET_CACHE_DIR) at a folder that has it."
        )
    try:
        return str(
            keras.utils.get_file(
                fname, origin=origin, cache_dir=str(cache_dir), cache_subdir=subdir
            )
        )
    except Exception as exc:  # urllib/HTTP errors surface as bare Exception in keras
        raise DatasetUnavailable(f"could not download {origin}: {exc}") from exc


def _load_mnist(cache_dir: Path, allow_download: bool) -> tuple[np.ndarray, np.ndarray]:
    path = _fetch("mnist.npz", _KERAS_ORIGIN + "mnist.npz", cache_dir, "datasets", allow_download)
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["x_train"], f["y_train"]
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetUnavailable(f"{path} is not a valid mnist.npz: {exc}") from exc


def _load_fashion_mnist(cache_dir: Path, allow_download: bool) -> tuple[np.ndarray, np.ndarray]:
    subdir = os.path.join("datasets", "fashion-mnist")
    paths = [
        _fetch(name, _KERAS_ORIGIN + name, cache_dir, subdir, allow_download)
        for name in _FASHION_FILES[:2]
    ]
    with gzip.open(paths[0], "rb") as labels:
        y = np.frombuffer(labels.read(), np.uint8, offset=8)
    with gzip.open(paths[1], "rb") as images:
        x = np.frombuffer(images.read(), np.uint8, offset=16).reshape(len(y), 28, 28)
    return x, y


def _load_cifar10(cache_dir: Path, allow_download: bool) -> tuple[np.ndarray, np.ndarray]:
    from keras.src.datasets.cifar import load_batch  # keras' own CIFAR pickle reader

    target = cache_dir / "datasets" / "cifar-10-batches-py-target"
    if not target.exists() and (not allow_download or not _reachable(_CIFAR_ORIGIN)):
        raise DatasetUnavailable(
            f"cifar10 is not cached at {target} and {_CIFAR_ORIGIN} cannot be downloaded"
        )
    try:
        path = keras.utils.get_file(
            "cifar-10-batches-py-target",
            origin=_CIFAR_ORIGIN,
            extract=True,
            cache_dir=str(cache_dir),
        )
    except Exception as exc:
        raise DatasetUnavailable(f"could not download {_CIFAR_ORIGIN}: {exc}") from exc
    xs, ys = [], []
    for i in range(1, 6):
        x, y = load_batch(os.path.join(path, "cifar-10-batches-py", f"data_batch_{i}"))
        xs.append(x)
        ys.append(np.asarray(y))
    return np.concatenate(xs), np.concatenate(ys)


def _sklearn(name: str) -> Callable[[Path, bool], tuple[np.ndarray, np.ndarray]]:
    def load(_cache_dir: Path, _allow_download: bool) -> tuple[np.ndarray, np.ndarray]:
        import sklearn.datasets as sk

        loader = getattr(sk, f"load_{name}")
        x, y = loader(return_X_y=True)
        return np.asarray(x), np.asarray(y)

    return load


_LOADERS: dict[str, Callable[[Path, bool], tuple[np.ndarray, np.ndarray]]] = {
    "digits": _sklearn("digits"),
    "iris": _sklearn("iris"),
    "wine": _sklearn("wine"),
    "breast_cancer": _sklearn("breast_cancer"),
    "diabetes": _sklearn("diabetes"),
    "mnist": _load_mnist,
    "fashion_mnist": _load_fashion_mnist,
    "cifar10": _load_cifar10,
}


def _synthetic(name: str, options: DatasetOptions) -> tuple[np.ndarray, np.ndarray]:
    import sklearn.datasets as sk

    if name == "regression":
        x, y = sk.make_regression(
            n_samples=options.n_samples,
            n_features=options.n_features,
            n_informative=max(1, min(options.n_features, 10)),
            noise=options.noise,
            random_state=options.seed,
        )
        return x, y
    # Enough informative features for n_classes single-cluster classes.
    n_informative = min(options.n_features, max(2, int(np.ceil(np.log2(options.n_classes))) + 1))
    x, y = sk.make_classification(
        n_samples=options.n_samples,
        n_features=options.n_features,
        n_informative=n_informative,
        n_redundant=0,
        n_repeated=0,
        n_classes=options.n_classes,
        n_clusters_per_class=1,
        flip_y=min(options.noise, 1.0),
        random_state=options.seed,
    )
    return x, y


def _standardize_target(
    task: str, y_tr: np.ndarray, y_va: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """A regression target standardised with the training split's mean and spread.

    Classification targets are returned as they are (mean 0, spread 1); the exported model
    inverts the target layer so its outputs are in the target's own units.
    """
    if task != "regression":
        return y_tr, y_va, 0.0, 1.0
    y_mean = float(y_tr.mean())
    y_std = float(y_tr.std()) or 1.0
    to_standard = standardizer(y_mean, y_std, name=TARGET_LAYER)
    y_tr = standardize(to_standard, y_tr.reshape(-1, 1)).reshape(-1)
    y_va = standardize(to_standard, y_va.reshape(-1, 1)).reshape(-1)
    return y_tr, y_va, y_mean, y_std


def _split(
    x: np.ndarray, y: np.ndarray, task: Task, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    stratify = None
    if task == "classification":
        _, counts = np.unique(y, return_counts=True)
        n_val = int(np.ceil(fraction * len(y)))
        if counts.min() >= 2 and n_val >= len(counts):
            stratify = y
    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=fraction, random_state=seed, stratify=stratify
    )
    return x_tr, x_va, y_tr, y_va


def load_dataset(
    dataset_id: str,
    options: DatasetOptions | None = None,
    *,
    validation_split: float = 0.2,
    seed: int = 0,
    cache_dir: Path | None = None,
    allow_download: bool = True,
) -> Dataset:
    """Load, subsample, split and standardise a dataset (cached in-process).

    The cache key is (dataset, options, split fraction, seed, cache dir), so a run loads its
    data once. For keras datasets only the keras *training* split is used (the test split
    stays untouched); our validation split comes out of it.
    """
    if dataset_id not in DATASET_TASKS:
        raise ValueError(f"unknown dataset {dataset_id!r}")
    options = options or DatasetOptions()
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = (dataset_id, options.model_dump_json(), validation_split, seed, str(cache_root))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    task = DATASET_TASKS[dataset_id]
    if dataset_id in ("classification", "regression"):
        x, y = _synthetic(dataset_id, options)
    else:
        x, y = _LOADERS[dataset_id](cache_root, allow_download)
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)  # images are flattened
    y = np.asarray(y).reshape(-1)
    if options.max_samples is not None and len(x) > options.max_samples:
        keep = np.random.default_rng(options.seed).choice(
            len(x), options.max_samples, replace=False
        )
        x, y = x[np.sort(keep)], y[np.sort(keep)]
    n_classes = 0
    if task == "classification":
        classes, y = np.unique(y, return_inverse=True)  # labels become 0..n-1
        n_classes = len(classes)
        y = y.astype(np.int32)
    else:
        y = y.astype(np.float32)
    x_tr, x_va, y_tr, y_va = _split(x, y, task, validation_split, seed)
    x_mean = x_tr.mean(axis=0)
    x_std = x_tr.std(axis=0)
    x_std[x_std == 0] = 1.0  # constant features (image borders) stay 0 after centring
    y_tr, y_va, y_mean, y_std = _standardize_target(task, y_tr, y_va)
    features = standardizer(x_mean, x_std, name=FEATURES_LAYER)
    dataset = Dataset(
        name=dataset_id,
        task=task,
        x_train=standardize(features, x_tr),
        y_train=y_tr,
        x_val=standardize(features, x_va),
        y_val=y_va,
        n_classes=n_classes,
        x_mean=x_mean.astype(np.float32),
        x_std=x_std.astype(np.float32),
        y_mean=y_mean,
        y_std=y_std,
    )
    with _cache_lock:
        _cache[key] = dataset
        while len(_cache) > _CACHE_LIMIT:
            _cache.popitem(last=False)
    return dataset


def cached_dataset(key: tuple[object, ...], build: Callable[[], Dataset]) -> Dataset:
    """The dataset cached under ``key``, else ``build()`` (then cached, least recent dropped)."""
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    dataset = build()
    with _cache_lock:
        _cache[key] = dataset
        while len(_cache) > _CACHE_LIMIT:
            _cache.popitem(last=False)
    return dataset


def tabular_dataset(
    name: str,
    task: Task,
    raw: np.ndarray,
    y: np.ndarray,
    columns: Sequence[FeatureColumn],
    *,
    n_classes: int = 0,
    labels: Sequence[str | int | float] = (),
    options: DatasetOptions | None = None,
    validation_split: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """An uploaded table, split and turned into features.

    ``raw`` holds one float per feature column (`app.nas.columns`: NaN for missing values,
    categories as their keys); ``y`` class indices (0..n_classes-1) or regression values.
    Numeric columns' means and spreads come from the training split (they become the
    model's imputation and standardisation); ``columns`` give kinds, categories and which
    columns get a missing indicator. ``labels``: the classes as they were in the file, in
    index order (the downloaded predictor answers with them).
    """
    options = options or DatasetOptions()
    if options.max_samples is not None and len(raw) > options.max_samples:
        keep = np.sort(
            np.random.default_rng(options.seed).choice(len(raw), options.max_samples, replace=False)
        )
        raw, y = raw[keep], y[keep]
    y = y.astype(np.int32) if task == "classification" else y.astype(np.float32)
    x_tr, x_va, y_tr, y_va = _split(
        raw.astype(np.float32, copy=False), y, task, validation_split, seed
    )
    fitted: list[FeatureColumn] = []
    for i, column in enumerate(columns):
        if column.kind != ColumnKind.NUMERIC:
            fitted.append(column)
            continue
        values = x_tr[:, i][~np.isnan(x_tr[:, i])]
        mean = float(values.mean()) if len(values) else 0.0
        std = float(values.std()) if len(values) else 1.0
        fitted.append(replace(column, mean=mean, std=std if std > 0 else 1.0))
    kept = tuple(fitted)
    y_tr, y_va, y_mean, y_std = _standardize_target(task, y_tr, y_va)
    empty = np.zeros(0, dtype=np.float32)
    return Dataset(
        name=name,
        task=task,
        x_train=tabular_transform(kept, x_tr),
        y_train=y_tr,
        x_val=tabular_transform(kept, x_va),
        y_val=y_va,
        n_classes=n_classes,
        x_mean=empty,
        x_std=empty,
        y_mean=y_mean,
        y_std=y_std,
        columns=kept,
        labels=tuple(labels),
    )
