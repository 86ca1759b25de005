"""Random-forest baseline of the OpenMIC-2018 release (binary relevance).

One sklearn RandomForestClassifier per instrument, trained on the time-averaged
VGGish feature of the clips labelled for that instrument only (the release's
baseline notebook). For storage without pickle, the fitted trees are exported as
plain arrays (``to_arrays``) and prediction runs on those arrays with a vectorised
numpy traversal, which reproduces sklearn's ``predict_proba``.
"""
from __future__ import annotations

import numpy as np

from instrec._io import InstrecError

_PARAM_KEYS = ("n_estimators", "max_depth", "random_state")
_INT_KEYS = ("left", "right", "feature", "roots", "params")
_FLOAT_KEYS = ("threshold", "value", "constant")


def check_arrays(arrays: dict[str, np.ndarray], source: str, n_classes: int | None = None,
                 n_features: int | None = None) -> dict[str, np.ndarray]:
    """The forest's arrays (see :meth:`RandomForestBaseline.to_arrays`) if they describe valid
    trees, else InstrecError naming ``source`` and the array: every key present with its dtype
    kind and shape, ``params`` of 3 values, ``roots`` (C, n_estimators) with C = ``n_classes``
    (when given), child indices in range and greater than their parent's (trees are stored
    parents first, so a descent always ends: no cycle, no self loop), both children or none,
    split features in [0, ``n_features``), finite thresholds, node and constant probabilities
    in [0, 1], and a root per tree exactly for the classes without a constant."""
    def bad(key: str, problem: str) -> InstrecError:
        return InstrecError(f"{source}: forest array {key!r} {problem}")

    out: dict[str, np.ndarray] = {}
    for key in (*_INT_KEYS, *_FLOAT_KEYS):
        if key not in arrays:
            raise InstrecError(f"{source}: forest array {key!r} missing; the file is damaged")
        value = np.asarray(arrays[key])
        kind = "i" if key in _INT_KEYS else "f"
        if value.dtype.kind != kind and not (kind == "f" and value.dtype.kind == "i"):
            raise bad(key, f"must hold {'integers' if kind == 'i' else 'numbers'}, got {value.dtype}")
        out[key] = value.astype(np.int64 if kind == "i" else np.float64)
    params, roots, constant = out["params"], out["roots"], out["constant"]
    if params.shape != (3,) or params[0] < 1 or params[1] < 1:
        raise bad("params", "must be 3 values: n_estimators >= 1, max_depth >= 1, random_state")
    if roots.ndim != 2 or roots.shape[1] != params[0]:
        raise bad("roots", f"must have shape (classes, {int(params[0])} trees), got {roots.shape}")
    if constant.shape != (roots.shape[0],):
        raise bad("constant", f"must have one value per class ({roots.shape[0]}), got shape {constant.shape}")
    if n_classes is not None and roots.shape[0] != n_classes:
        raise bad("roots", f"holds {roots.shape[0]} classes but the run has {n_classes}")
    n = len(out["left"])
    for key in ("left", "right", "feature", "threshold", "value"):
        if out[key].shape != (n,):
            raise bad(key, f"must have one value per node ({n}), got shape {out[key].shape}")
    left, right, feature = out["left"], out["right"], out["feature"]
    inner = left >= 0
    index = np.arange(n)
    if ((right >= 0) != inner).any() or (left[~inner] != -1).any() or (right[~inner] != -1).any():
        raise bad("right", "must be -1 exactly where 'left' is -1 (a node has two children or none)")
    for key, child in (("left", left), ("right", right)):
        if (child[inner] >= n).any() or (child[inner] <= index[inner]).any():
            raise bad(key, f"must point past its own node and below {n} (a tree without cycles)")
    if (feature[inner] < 0).any() or (n_features is not None and (feature[inner] >= n_features).any()):
        raise bad("feature", f"must lie in [0, {n_features if n_features is not None else 'features'})")
    if not np.isfinite(out["threshold"][inner]).all():
        raise bad("threshold", "must be finite at split nodes")
    value = out["value"]
    if not (np.isfinite(value).all() and (value >= 0).all() and (value <= 1).all()):
        raise bad("value", "must hold probabilities in [0, 1]")
    fitted = np.isnan(constant)
    if ((constant[~fitted] < 0) | (constant[~fitted] > 1)).any():
        raise bad("constant", "must hold NaN (fitted class) or probabilities in [0, 1]")
    if (roots[~fitted] != -1).any() or (roots[fitted] < 0).any() or (roots[fitted] >= n).any():
        raise bad("roots", f"must be a node in [0, {n}) for each tree of a fitted class and -1 otherwise")
    return out


def clip_features(x: np.ndarray) -> np.ndarray:
    """(N, T, F) frames -> (N, F) float32 time-mean (sklearn trees compare in float32)."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"expected features of shape (clips, frames, features), got {x.shape}")
    return x.mean(axis=1, dtype=np.float64).astype(np.float32)


class RandomForestBaseline:
    """Per-class random forests on time-mean features.

    After ``fit`` the model is held only as arrays (see ``to_arrays``); sklearn is
    needed for fitting, not for prediction. A class whose labelled training clips all
    share one label value (or that has no labelled clip) gets a constant predictor:
    the fraction of positives among its labelled clips (so 0 or 1), or 0.5 without any.
    """

    def __init__(self, n_estimators: int = 100, max_depth: int = 8, random_state: int | None = 0,
                 n_jobs: int = 1) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.random_state = random_state
        self.n_jobs = n_jobs
        self._arrays: dict[str, np.ndarray] | None = None

    def fit(self, x: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> "RandomForestBaseline":
        """x (N, T, F) features; targets (N, C) in [0, 1] (positive: >= 0.5); mask (N, C) labelled."""
        from sklearn.ensemble import RandomForestClassifier  # only for fitting

        feats = clip_features(x)
        targets, mask = np.asarray(targets), np.asarray(mask).astype(bool)
        if targets.shape != mask.shape or targets.shape[0] != feats.shape[0]:
            raise ValueError(f"targets {targets.shape} and mask {mask.shape} must be (N, C) with "
                             f"N = {feats.shape[0]} clips")
        n_classes = targets.shape[1]
        keys = ("left", "right", "feature", "threshold", "value")
        nodes: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        roots = np.full((n_classes, self.n_estimators), -1, dtype=np.int64)
        constant = np.full(n_classes, np.nan)
        offset = 0
        for c in range(n_classes):
            labelled = mask[:, c]
            y = targets[labelled, c] >= 0.5
            if y.size == 0 or y.all() or not y.any():
                constant[c] = y.mean() if y.size else 0.5
                continue
            forest = RandomForestClassifier(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                            random_state=self.random_state, n_jobs=self.n_jobs)
            forest.fit(feats[labelled], y)
            pos = int(np.flatnonzero(forest.classes_ == True)[0])  # noqa: E712 (numpy bool)
            for j, est in enumerate(forest.estimators_):
                tree = est.tree_
                is_leaf = tree.children_left < 0
                roots[c, j] = offset
                nodes["left"].append(np.where(is_leaf, -1, tree.children_left + offset))
                nodes["right"].append(np.where(is_leaf, -1, tree.children_right + offset))
                nodes["feature"].append(np.where(is_leaf, 0, tree.feature))
                nodes["threshold"].append(tree.threshold)
                counts = tree.value[:, 0, :]
                nodes["value"].append(counts[:, pos] / counts.sum(axis=1))
                offset += tree.node_count
        arrays = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in nodes.items()}
        for k in ("left", "right", "feature"):
            arrays[k] = arrays[k].astype(np.int64)
        arrays["threshold"] = arrays["threshold"].astype(np.float64)
        arrays["value"] = arrays["value"].astype(np.float64)
        arrays["roots"] = roots
        arrays["constant"] = constant
        arrays["params"] = np.array([self.n_estimators, self.max_depth,
                                     -1 if self.random_state is None else self.random_state], dtype=np.int64)
        self._arrays = arrays
        return self

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Fitted model as named arrays (safetensors-ready).

        All trees' nodes are concatenated: ``left``/``right`` (int64, global child
        index, -1 at leaves), ``feature`` (int64), ``threshold`` (float64; go left if
        feature <= threshold), ``value`` (float64, P(positive) at the node);
        ``roots`` (C, n_estimators) int64 root node per tree (-1 for constant classes);
        ``constant`` (C,) float64 constant prediction or NaN; ``params`` (3,) int64
        n_estimators, max_depth, random_state (-1 for None).
        """
        if self._arrays is None:
            raise RuntimeError("RandomForestBaseline is not fitted")
        return {k: v.copy() for k, v in self._arrays.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], source: str = "<forest>", n_classes: int | None = None,
                    n_features: int | None = None) -> "RandomForestBaseline":
        """Rebuild a fitted model from ``to_arrays`` output, checked (:func:`check_arrays`:
        a damaged or crafted file is an InstrecError naming ``source``, never a hang)."""
        arrays = check_arrays(arrays, source, n_classes, n_features)
        n_est, depth, seed = (int(v) for v in arrays["params"])
        model = cls(n_estimators=n_est, max_depth=depth, random_state=None if seed < 0 else seed)
        model._arrays = arrays
        return model

    def predict_proba(self, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """x (N, T, F) -> (N, C) float64 probability of presence per class."""
        if self._arrays is None:
            raise RuntimeError("RandomForestBaseline is not fitted")
        a = self._arrays
        feats = clip_features(x).astype(np.float64)
        needed = int(a["feature"].max(initial=-1)) + 1
        if feats.shape[1] < needed:
            raise InstrecError(f"the forest splits on feature {needed - 1} but the features have {feats.shape[1]}")
        roots, constant = a["roots"], a["constant"]
        n_classes, n_trees = roots.shape
        out = np.tile(constant, (feats.shape[0], 1))
        fitted = np.flatnonzero(np.isnan(constant))
        if fitted.size == 0:
            return out
        root_ids = roots[fitted].reshape(-1)
        left, right, feature, threshold = a["left"], a["right"], a["feature"], a["threshold"]
        for start in range(0, feats.shape[0], chunk):
            f = feats[start : start + chunk]
            rows = np.arange(f.shape[0])[:, None]
            node = np.broadcast_to(root_ids, (f.shape[0], root_ids.size)).copy()
            while True:  # all trees of all classes descend one level per pass
                inner = left[node] >= 0
                if not inner.any():
                    break
                go_left = f[rows, feature[node]] <= threshold[node]
                node = np.where(inner, np.where(go_left, left[node], right[node]), node)
            leaf_p = a["value"][node].reshape(f.shape[0], fitted.size, n_trees)
            out[start : start + chunk, fitted] = leaf_p.mean(axis=2)
        return out
