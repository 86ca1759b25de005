"""Clip-level (weak-label) metrics for multi-instrument recognition with partial labels.

Every function takes the same three ``(N, C)`` arrays, N clips by C instruments:

* ``y_true`` -- label relevance in [0, 1]; an entry is *positive* when ``>= 0.5``.
* ``y_mask`` -- bool, True where the (clip, instrument) pair is labelled. Only
  labelled entries enter any metric; unlabelled entries of ``y_true`` may hold any
  placeholder (NaN included) and unlabelled predictions never change a number.
* ``probs``  -- predicted probability in [0, 1] for every entry (finite everywhere).

Decision rule: a prediction is positive iff ``prob > threshold`` (strictly greater),
as in the paper ("greater than 0.5") and as scikit-learn's ``predict`` for a binary
probabilistic classifier (argmax over ``[1 - p, p]`` keeps the negative class at a tie).

Zero division follows scikit-learn's ``zero_division=0``: precision, recall or F1
whose denominator is 0 is reported as 0.0. Average precision is undefined for an
instrument without labelled positives; it is NaN there and skipped by ``mean_ap``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np

__all__ = ["validate", "per_class", "evaluate", "f1_summary", "tune_thresholds", "average_precision", "DEFAULT_GRID"]

#: Threshold grid searched by :func:`tune_thresholds`: 0.05, 0.10, ..., 0.95 (rounded so
#: that e.g. 0.4 is exactly the float 0.4, not 0.40000000000000002).
DEFAULT_GRID: np.ndarray = np.round(np.linspace(0.05, 0.95, 19), 2)


# --------------------------------------------------------------------------- validation
def validate(y_true, y_mask, probs, classes: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check the inputs and return them as ``(float64 (N,C), bool (N,C), float64 (N,C))``.

    Raises ``ValueError`` naming the offending argument when the arrays are not 2-D,
    their shapes differ, ``len(classes) != C`` (when ``classes`` is given), the mask is not boolean (0/1 integers
    are accepted), a labelled ``y_true`` entry is NaN or outside [0, 1], or any
    ``probs`` entry is NaN/inf or outside [0, 1].
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    mask = np.asarray(y_mask)
    for name, arr in (("y_true", y_true), ("y_mask", mask), ("probs", probs)):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D (N, C) array, got shape {arr.shape}")
    if mask.shape != y_true.shape or probs.shape != y_true.shape:
        raise ValueError(
            f"shape mismatch: y_true {y_true.shape}, y_mask {mask.shape}, probs {probs.shape}")
    if classes is not None and len(classes) != y_true.shape[1]:
        raise ValueError(f"classes has {len(classes)} names but the arrays have {y_true.shape[1]} columns")
    if mask.dtype != bool:
        if not np.issubdtype(mask.dtype, np.integer) or not np.isin(mask, (0, 1)).all():
            raise ValueError(f"y_mask must be boolean (or 0/1 integers), got dtype {mask.dtype}")
        mask = mask.astype(bool)
    labelled = y_true[mask]
    if np.isnan(labelled).any():
        raise ValueError("y_true has NaN at labelled entries")
    if labelled.size and (labelled.min() < 0.0 or labelled.max() > 1.0):
        raise ValueError("y_true must lie in [0, 1] at labelled entries")
    if not np.isfinite(probs).all():
        raise ValueError("probs contains NaN or infinite values")
    if probs.size and (probs.min() < 0.0 or probs.max() > 1.0):
        raise ValueError("probs must lie in [0, 1]")
    return y_true, mask, probs


def _thresholds(threshold, n_classes: int) -> np.ndarray:
    """Broadcast a scalar or ``(C,)`` threshold to a float array of shape ``(C,)``."""
    thr = np.asarray(threshold, dtype=np.float64)
    if thr.ndim == 0:
        thr = np.full(n_classes, float(thr))
    if thr.shape != (n_classes,):
        raise ValueError(f"threshold must be a scalar or have shape ({n_classes},), got {thr.shape}")
    if not np.isfinite(thr).all() or thr.min() < 0.0 or thr.max() > 1.0:
        raise ValueError("threshold values must lie in [0, 1]")
    return thr


# --------------------------------------------------------------------------- pure functions
def _ratio(num: float, den: float) -> float:
    """``num / den`` with the zero-division convention ``0 / 0 -> 0.0``."""
    return float(num) / float(den) if den > 0 else 0.0


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts (F1 = 2TP / (2TP + FP + FN))."""
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)


def average_precision(positive: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of ``scores`` (1-D) for bool labels ``positive`` (1-D).

    Same definition as ``sklearn.metrics.average_precision_score``: the sum over
    distinct score thresholds of ``(R_n - R_{n-1}) * P_n``, without interpolation.
    Returns NaN when there is no positive.
    """
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    s, hit = scores[order], positive[order]
    # The last index of every run of equal scores is where a threshold cuts.
    cut = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.cumsum(hit)[cut]
    precision = tp / (cut + 1.0)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _class_row(name: str, pos: np.ndarray, pred: np.ndarray, prob: np.ndarray, thr: float) -> OrderedDict:
    """Metrics of one instrument from its labelled entries only (1-D arrays of length n)."""
    tp = int(np.sum(pos & pred))
    fp = int(np.sum(~pos & pred))
    fn = int(np.sum(pos & ~pred))
    tn = int(pos.size - tp - fp - fn)
    precision, recall, f1 = _prf(tp, fp, fn) if pos.size else (float("nan"),) * 3
    f1_neg = _ratio(2 * tn, 2 * tn + fn + fp)
    # sklearn's f1_score(average='macro') averages over the labels present in
    # y_true or y_pred, so a one-label instrument averages one F1, not two.
    present = [f for f, seen in ((f1_neg, tn + fn + fp > 0), (f1, tp + fp + fn > 0)) if seen]
    f1_2class = float(np.mean(present)) if present else float("nan")
    return OrderedDict([
        ("instrument", name), ("precision", precision), ("recall", recall), ("f1", f1),
        ("f1_2class", f1_2class), ("average_precision", average_precision(pos, prob)),
        ("support_pos", tp + fn), ("support_neg", tn + fp), ("tp", tp), ("fp", fp), ("fn", fn),
        ("tn", tn), ("threshold", float(thr)),
    ])


def per_class(y_true, y_mask, probs, classes: Sequence[str], threshold=0.5) -> list[OrderedDict]:
    """Per-instrument metrics over labelled entries, in the order of ``classes``.

    ``threshold`` is a scalar or a ``(C,)`` array (e.g. from :func:`tune_thresholds`).
    Each row holds ``instrument, precision, recall, f1`` (positive class), ``f1_2class``
    (scikit-learn's 2-class macro F1: mean of the absent and present F1; NaN with no
    labelled entry), ``average_precision`` (NaN without labelled positives),
    ``support_pos, support_neg, tp, fp, fn, tn`` and the ``threshold`` used.
    """
    y_true, mask, probs = validate(y_true, y_mask, probs, classes)
    thr = _thresholds(threshold, y_true.shape[1])
    rows = []
    for c, name in enumerate(classes):
        m = mask[:, c]
        pos = y_true[m, c] >= 0.5
        prob = probs[m, c]
        rows.append(_class_row(str(name), pos, prob > thr[c], prob, thr[c]))
    return rows


def _nanmean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN (without a warning) when there is none."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def evaluate(y_true, y_mask, probs, classes: Sequence[str], threshold=0.5) -> OrderedDict:
    """All clip-level metrics in one ordered dict.

    Keys: ``macro_f1, micro_f1, macro_f1_2class, mean_ap, macro_precision,
    macro_recall, micro_precision, micro_recall, n_labelled, n_positive, per_class``.
    Macro precision/recall/F1 average every instrument that has at least one labelled
    entry (zero-division entries count as 0, as in scikit-learn); an instrument with no
    labelled entry has NaN scores and is left out, as are NaN entries of
    ``macro_f1_2class`` and ``mean_ap``.
    Micro scores pool TP/FP/FN over all labelled (clip, instrument) pairs.
    """
    rows = per_class(y_true, y_mask, probs, classes, threshold)
    tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
    micro_p, micro_r, micro_f1 = _prf(tp, fp, fn)
    return OrderedDict([
        ("macro_f1", _nanmean([r["f1"] for r in rows])),
        ("micro_f1", micro_f1),
        ("macro_f1_2class", _nanmean([r["f1_2class"] for r in rows])),
        ("mean_ap", _nanmean([r["average_precision"] for r in rows])),
        ("macro_precision", _nanmean([r["precision"] for r in rows])),
        ("macro_recall", _nanmean([r["recall"] for r in rows])),
        ("micro_precision", micro_p),
        ("micro_recall", micro_r),
        ("n_labelled", int(sum(r["support_pos"] + r["support_neg"] for r in rows))),
        ("n_positive", int(sum(r["support_pos"] for r in rows))),
        ("per_class", rows),
    ])


def f1_summary(y_true, y_mask, probs, threshold=0.5) -> tuple[float, float]:
    """``(macro_f1, micro_f1)`` over labelled entries -- the per-epoch validation score.

    Same numbers as :func:`evaluate`, without the per-class report.
    """
    y_true, mask, probs = validate(y_true, y_mask, probs)
    thr = _thresholds(threshold, y_true.shape[1])
    pos = (y_true >= 0.5) & mask
    pred = (probs > thr[None, :]) & mask
    tp = np.sum(pos & pred, axis=0).astype(np.float64)
    fp = np.sum(~pos & pred, axis=0)
    fn = np.sum(pos & ~pred, axis=0)
    den = 2 * tp + fp + fn
    per_class_f1 = np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)[mask.any(axis=0)]
    macro = float(per_class_f1.mean()) if per_class_f1.size else 0.0
    return macro, _prf(tp.sum(), fp.sum(), fn.sum())[2]


def tune_thresholds(y_true, y_mask, probs, grid=DEFAULT_GRID) -> np.ndarray:
    """Per-instrument threshold from ``grid`` maximising positive-class F1; shape ``(C,)``.

    Meant for validation data. Among thresholds tied at the best F1 the one closest
    to 0.5 wins (the lower one on an exact tie). Instruments without a labelled
    positive keep 0.5.
    """
    y_true, mask, probs = validate(y_true, y_mask, probs)
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError("grid must be a non-empty 1-D array of thresholds")
    if not np.isfinite(grid).all() or grid.min() < 0.0 or grid.max() > 1.0:
        raise ValueError("grid values must lie in [0, 1]")
    # Visit candidates by distance to 0.5 (then by value) so argmax picks that tie-break.
    order = np.lexsort((grid, np.round(np.abs(grid - 0.5), 12)))
    ranked = grid[order]
    out = np.full(y_true.shape[1], 0.5)
    for c in range(y_true.shape[1]):
        m = mask[:, c]
        pos = y_true[m, c] >= 0.5
        if not pos.any():
            continue
        pred = probs[m, c][:, None] > ranked[None, :]
        tp = np.sum(pred & pos[:, None], axis=0)
        f1 = 2.0 * tp / (pos.sum() + pred.sum(axis=0))  # 2TP / (2TP + FP + FN); denominator > 0
        out[c] = ranked[int(np.argmax(f1))]
    return out


def call_everything_macro_f1(y_true, y_mask, classes: Sequence[str]) -> float:
    """Macro F1 of a tagger that calls every instrument present in every clip. On partial
    labels that is far from 0 (many labelled entries are positives), so it is the floor a
    model must beat."""
    y_true = np.asarray(y_true, dtype=np.float64)
    return float(evaluate(y_true, y_mask, np.ones_like(y_true), classes)["macro_f1"])
