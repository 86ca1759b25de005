"""Loading and writing datasets in the OpenMIC-2018 layout.

A dataset folder ``DIR`` holds

* ``DIR/openmic-2018.npz`` with ``X`` (N, T, F) features on the 0-255 scale (the release:
  (20000, 10, 128) uint8 VGGish embeddings), ``Y_true`` (N, C) relevance in [0, 1],
  ``Y_mask`` (N, C) bool (True where the entry was labelled) and ``sample_key`` (N,) str;
* ``DIR/partitions/<split>_train.csv`` and ``<split>_test.csv``: one sample key a line;
* ``DIR/class-map.json``: ``{instrument name: column index}``.

The release stores ``sample_key`` as a pickled object array; it is read with an unpickler
that can only rebuild numpy arrays, so a crafted file cannot run code (:mod:`instrec.data.npz`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from instrec._io import (
    InstrecError,
    atomic_save_npz,
    atomic_write_json,
    atomic_write_text,
)
from instrec._jsonread import read_json
from instrec.data.layout import CLASS_MAP_FILE, NPZ_FILE, partition_path
from instrec.data.npz import read_npz_safely

#: The arrays of an OpenMIC-layout npz.
ARRAYS = ("X", "Y_true", "Y_mask", "sample_key")

@dataclass(frozen=True)
class OpenMICData:
    """Clips of an OpenMIC-layout dataset.

    ``X``: (N, T, F) float32 features divided by 255 (the release's values lie in [0, 1]);
    ``Y_true``: (N, C) float32 relevance in [0, 1]; ``Y_mask``: (N, C) bool, True where
    labelled (unlabelled entries are unknown, never negative); ``sample_key``: (N,) str;
    ``classes``: the C instrument names in column order.
    """

    X: np.ndarray
    Y_true: np.ndarray
    Y_mask: np.ndarray
    sample_key: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def targets(self) -> np.ndarray:
        """(N, C) float32 hard targets: 1 where labelled and ``Y_true >= 0.5``, else 0."""
        return ((self.Y_true >= 0.5) & self.Y_mask).astype(np.float32)

    def subset(self, index: np.ndarray | Sequence[int]) -> "OpenMICData":
        """The clips at integer positions ``index`` (in that order)."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        return OpenMICData(self.X[idx], self.Y_true[idx], self.Y_mask[idx], self.sample_key[idx], self.classes)


#: Largest magnitude of a float feature accepted (the scale is 0-255; a little outside is
#: warned about): beyond it a model's sums overflow float32 and every output becomes NaN.
MAX_ABS_FEATURE = 1e6


def _check_features(X: np.ndarray, path: Path) -> None:
    """Refuse (N, T, F) features that are not on the 0-255 scale; warn for odd floats."""
    if X.ndim != 3:
        raise InstrecError(f"{path}: X must have shape (N, T, F), got {X.shape}")
    if X.shape[1] < 1 or X.shape[2] < 1:
        raise InstrecError(f"{path}: X has {X.shape[1]} frames of {X.shape[2]} features per clip; both must be >= 1")
    if X.dtype.kind in "ui":
        if X.size and (X.min() < 0 or X.max() > 255):
            raise InstrecError(f"{path}: integer X values must lie in 0-255, found {X.min()}..{X.max()}")
    elif X.dtype.kind == "f":
        if not np.isfinite(X).all():
            raise InstrecError(f"{path}: X contains NaN or Inf")
        if X.size and max(-float(X.min()), float(X.max())) > MAX_ABS_FEATURE:
            raise InstrecError(f"{path}: float X values {X.min():g}..{X.max():g} are far outside the 0-255 scale "
                               f"(beyond +-{MAX_ABS_FEATURE:g}); the features are damaged or on another scale")
        if X.size and (X.min() < 0 or X.max() > 255):
            warnings.warn(f"{path}: float X values {X.min():g}..{X.max():g} lie outside the 0-255 scale; "
                          "dividing by 255 anyway", stacklevel=3)
    else:
        raise InstrecError(f"{path}: X must be integer or float, got dtype {X.dtype}")


def _features(X: np.ndarray) -> np.ndarray:
    """(N, T, F) features on the 0-255 scale (checked by :func:`_check_features`) -> float32
    divided by 255."""
    # One pass: the inputs are cast to float32 and divided there, the same bits as
    # astype(float32) followed by an in-place division.
    return np.divide(X, np.float32(255.0), dtype=np.float32)


def _keys(arr: np.ndarray, path: Path) -> np.ndarray:
    """(N,) sample keys as a unicode array; every element must be a str."""
    if arr.ndim != 1:
        raise InstrecError(f"{path}: sample_key must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "S":
        try:
            arr = np.char.decode(arr, "utf-8")
        except UnicodeDecodeError as exc:
            raise InstrecError(f"{path}: sample_key holds bytes that are not UTF-8 ({exc.reason})") from None
    elif arr.dtype.kind != "U":
        if arr.dtype != object:
            raise InstrecError(f"{path}: sample_key must hold strings, got dtype {arr.dtype}")
        bad = next((x for x in arr.tolist() if not isinstance(x, str)), None)
        if bad is not None:
            raise InstrecError(f"{path}: sample_key elements must be strings, found {type(bad).__name__}")
        arr = np.array(arr.tolist(), dtype=str) if len(arr) else np.zeros(0, dtype="<U1")
    bad = next((k for k in arr.tolist() if sample_key_problem(k)), None)
    if bad is not None:
        raise InstrecError(f"{path}: sample key {bad!r} {sample_key_problem(bad)}")
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise InstrecError(f"{path}: duplicate sample keys, e.g. {', '.join(uniq[counts > 1][:3])}")
    return arr


def _labels(Y_true: np.ndarray, Y_mask: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Validate relevance (N, C) in [0, 1] and the (N, C) labelled mask."""
    if Y_true.ndim != 2:
        raise InstrecError(f"{path}: Y_true must have shape (N, C), got {Y_true.shape}")
    if Y_true.shape != Y_mask.shape:
        raise InstrecError(f"{path}: Y_true shape {Y_true.shape} differs from Y_mask shape {Y_mask.shape}")
    if Y_true.dtype.kind not in "uif" or Y_mask.dtype.kind not in "bui":
        raise InstrecError(f"{path}: Y_true must be numeric and Y_mask boolean, got {Y_true.dtype}/{Y_mask.dtype}")
    y = Y_true.astype(np.float32)
    if np.isnan(y).any():
        raise InstrecError(f"{path}: Y_true contains NaN (mark unlabelled entries with Y_mask instead)")
    if y.size and (y.min() < 0 or y.max() > 1):
        raise InstrecError(f"{path}: Y_true values must lie in [0, 1], found {y.min():g}..{y.max():g}")
    if Y_mask.dtype.kind != "b" and not np.isin(Y_mask, (0, 1)).all():
        raise InstrecError(f"{path}: Y_mask must be boolean (0/1)")
    return y, Y_mask.astype(bool)


def read_class_map(path: str | Path, n_classes: int | None = None) -> tuple[str, ...]:
    """Class names from ``class-map.json`` ({name: index}), in index order 0..C-1."""
    path = Path(path)
    if not path.is_file():
        raise InstrecError(f"{path}: class map not found")
    mapping = read_json(path)
    if not isinstance(mapping, dict) or not all(type(v) is int for v in mapping.values()):
        raise InstrecError(f"{path}: class map must be an object {{instrument name: integer column index}}")
    if sorted(mapping.values()) != list(range(len(mapping))):
        raise InstrecError(f"{path}: class indices must be unique and cover 0..{len(mapping) - 1}")
    if n_classes is not None and len(mapping) != n_classes:
        raise InstrecError(f"{path}: class map has {len(mapping)} classes but Y_true has {n_classes} columns")
    return tuple(sorted(mapping, key=mapping.__getitem__))


def sample_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a sample key (partition files hold one key a line and strip
    blanks, so such a key would not read back), or None."""
    if not key:
        return "is empty"
    if key != key.strip():
        return "starts or ends with white space"
    if any(ord(ch) < 32 or ch == "\x7f" for ch in key) or key.splitlines() != [key]:
        return "holds a control character (a newline, a tab...)"
    return None


def require_dataset_dir(data_dir: str | Path) -> Path:
    """``data_dir`` as a Path; a clear error if the folder itself is missing (rather than
    the first file looked for in it)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        what = "is not a folder" if data_dir.exists() else "dataset folder not found"
        raise InstrecError(f"{data_dir}: {what}")
    return data_dir


def _read_dataset(data_dir: Path) -> OpenMICData:
    """All clips of ``data_dir``, validated, with ``X`` as stored (not yet divided by 255)."""
    require_dataset_dir(data_dir)
    path = data_dir / NPZ_FILE
    arrays = read_npz_safely(path, ARRAYS)
    n = {name: arrays[name].shape[0] if arrays[name].ndim else None for name in ARRAYS}
    if len(set(n.values())) != 1:
        raise InstrecError(f"{path}: arrays disagree on the number of clips: "
                           + ", ".join(f"{k} {v}" for k, v in n.items()))
    _check_features(arrays["X"], path)
    Y_true, Y_mask = _labels(arrays["Y_true"], arrays["Y_mask"], path)
    keys = _keys(arrays["sample_key"], path)
    classes = read_class_map(data_dir / CLASS_MAP_FILE, Y_true.shape[1])
    return OpenMICData(arrays["X"], Y_true, Y_mask, keys, classes)


def _scaled(data: OpenMICData) -> OpenMICData:
    """``data`` with its stored 0-255 features as float32 divided by 255."""
    return replace(data, X=_features(data.X))


def load_openmic(data_dir: str | Path) -> OpenMICData:
    """All clips of the OpenMIC-layout dataset in ``data_dir`` (see the module docstring)."""
    return _scaled(_read_dataset(Path(data_dir)))


def read_partition(path: str | Path) -> list[str]:
    """Sample keys of a partition file (one a line, no header; blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise InstrecError(f"{path}: partition file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InstrecError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    keys = [line.strip() for line in text.splitlines() if line.strip()]
    if len(set(keys)) != len(keys):
        dup = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise InstrecError(f"{path}: sample key {dup!r} listed twice")
    return keys


def load_split(data_dir: str | Path, split: str = "train", split_name: str = "split01",
               data: OpenMICData | None = None) -> OpenMICData:
    """The clips of partition ``<split_name>_<split>.csv``, in the file's order.

    ``data`` may pass an already loaded :func:`load_openmic` result to avoid reading twice.
    """
    require_dataset_dir(data_dir)
    path = partition_path(data_dir, split, split_name)
    keys = read_partition(path)
    if not keys:
        raise InstrecError(f"{path}: partition is empty")
    # Only the partition's clips are converted to float (not the whole release, then copied).
    stored = _read_dataset(Path(data_dir)) if data is None else data
    index = {k: i for i, k in enumerate(stored.sample_key.tolist())}
    missing = [k for k in keys if k not in index]
    if missing:
        raise InstrecError(f"{path}: {len(missing)} key(s) not in {Path(data_dir) / NPZ_FILE}, "
                           f"e.g. {', '.join(missing[:3])}")
    part = stored.subset(np.array([index[k] for k in keys], dtype=np.int64))
    return part if data is not None else _scaled(part)


def validation_split(n: int, fraction: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``range(n)`` into sorted (train, validation) int64 index arrays.

    The validation part has ``round(n * fraction)`` items, at least 1 and at most n-1
    when n >= 2; the same ``seed`` always gives the same split.
    """
    if not 0 < fraction < 1:
        raise InstrecError(f"validation fraction must be in (0, 1), got {fraction}")
    if n < 0:
        raise InstrecError(f"number of clips must be >= 0, got {n}")
    n_val = int(round(n * fraction))
    if n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]).astype(np.int64), np.sort(order[:n_val]).astype(np.int64)


def write_openmic(data_dir: str | Path, X: np.ndarray, Y_true: np.ndarray, Y_mask: np.ndarray,
                  sample_key: Sequence[str] | np.ndarray, classes: Sequence[str],
                  train: Sequence[str] | None = None, test: Sequence[str] | None = None, *,
                  partitions: Mapping[str, Sequence[str]] | None = None, split_name: str = "split01") -> Path:
    """Write an OpenMIC-layout dataset to ``data_dir``; return ``data_dir``.

    ``X``: (N, T, F) integers in 0-255 (stored as uint8); ``Y_true``/``Y_mask``: (N, C);
    ``sample_key``: N unique strings; ``classes``: C names. Partitions are the ``train``
    and ``test`` key lists and/or ``partitions`` ({split: keys}), each written as
    ``partitions/<split_name>_<split>.csv``.
    """
    data_dir = Path(data_dir)
    path = data_dir / NPZ_FILE
    partitions = dict(partitions or {})
    for split, part in (("train", train), ("test", test)):
        if part is not None:
            if split in partitions:
                raise InstrecError(f"{partition_path(data_dir, split, split_name)}: keys given twice")
            partitions[split] = part
    partitions = {split: [str(k) for k in part] for split, part in partitions.items()}
    X = np.asarray(X)
    if X.dtype.kind not in "ui" and not (X.dtype.kind == "f" and np.array_equal(X, np.round(X))):
        raise InstrecError(f"{path}: X to write must hold integers 0-255, got dtype {X.dtype}")
    _check_features(X, path)
    y, m = _labels(np.asarray(Y_true), np.asarray(Y_mask), path)
    keys = _keys(np.asarray(list(sample_key), dtype=str).reshape(-1), path)
    classes = [str(c) for c in classes]
    if not (len(X) == len(y) == len(keys)):
        raise InstrecError(f"{path}: X, Y_true and sample_key disagree on N ({len(X)}, {len(y)}, {len(keys)})")
    if len(classes) != y.shape[1] or len(set(classes)) != len(classes):
        raise InstrecError(f"{path}: need {y.shape[1]} unique class names, got {len(classes)}")
    known = set(keys.tolist())
    for split, part in partitions.items():
        bad = [k for k in part if k not in known]
        if bad:
            raise InstrecError(f"{partition_path(data_dir, split, split_name)}: keys not in the dataset, "
                               f"e.g. {', '.join(map(str, bad[:3]))}")
    atomic_save_npz(path, {"X": X.astype(np.uint8), "Y_true": y, "Y_mask": m, "sample_key": keys})
    atomic_write_json(data_dir / CLASS_MAP_FILE, {c: i for i, c in enumerate(classes)})
    for split, part in partitions.items():
        atomic_write_text(partition_path(data_dir, split, split_name), "".join(f"{k}\n" for k in part))
    return data_dir
