"""Tests for instrec.evaluation.metrics: a hand-computed fixture, then scikit-learn as the reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_recall_fscore_support

from instrec.evaluation import metrics

NAN = float("nan")

# ----------------------------------------------------------------------------- hand fixture
# piano: rows 0-4 labelled, row 5 unlabelled (placeholder 0.5, confident garbage prob).
#   truth  1    1    0    0    1     probs 0.9  0.4  0.6  0.1  0.5   (0.5 is NOT > 0.5)
#   pred   1    0    1    0    0     -> TP=1 (r0) FP=1 (r2) FN=2 (r1, r4) TN=1 (r3)
#   P = 1/2, R = 1/3, F1 = 2*1/(2*1+1+2) = 2/5; absent-class F1 = 2*1/(2*1+2+1) = 2/5
#   AP: ranked 0.9+ 0.6- 0.5+ 0.4+ 0.1-  -> 1/3*1 + 1/3*2/3 + 1/3*3/4 = 29/36
# voice: rows 0-3 labelled (relevance 0.2 is negative, 0.7 positive), rows 4-5 NaN.
#   truth  0    0    0    1          probs 0.3  0.8  0.2  0.95
#   pred   0    1    0    1          -> TP=1 FP=1 FN=0 TN=2
#   P = 1/2, R = 1, F1 = 2/3; absent-class F1 = 2*2/(2*2+0+1) = 4/5 -> f1_2class = 11/15
#   AP: 0.95 is the only positive and ranks first -> 1
# pooled: TP=2 FP=2 FN=2 -> micro P = R = F1 = 1/2
CLASSES = ["piano", "voice"]
Y_TRUE = np.array([[1, 0], [1, 0], [0, 0.2], [0, 0.7], [1, NAN], [0.5, NAN]])
Y_MASK = np.array([[1, 1], [1, 1], [1, 1], [1, 1], [1, 0], [0, 0]], dtype=bool)
PROBS = np.array([[0.9, 0.3], [0.4, 0.8], [0.6, 0.2], [0.1, 0.95], [0.5, 0.0], [0.99, 0.7]])


def test_hand_fixture_per_class():
    piano, voice = metrics.per_class(Y_TRUE, Y_MASK, PROBS, CLASSES)
    assert (piano["tp"], piano["fp"], piano["fn"], piano["tn"]) == (1, 1, 2, 1)
    assert (voice["tp"], voice["fp"], voice["fn"], voice["tn"]) == (1, 1, 0, 2)
    assert piano["instrument"] == "piano" and voice["instrument"] == "voice"
    assert piano["precision"] == pytest.approx(1 / 2)
    assert piano["recall"] == pytest.approx(1 / 3)
    assert piano["f1"] == pytest.approx(2 / 5)
    assert piano["f1_2class"] == pytest.approx(2 / 5)
    assert piano["average_precision"] == pytest.approx(29 / 36)
    assert (piano["support_pos"], piano["support_neg"]) == (3, 2)
    assert voice["precision"] == pytest.approx(1 / 2)
    assert voice["recall"] == pytest.approx(1.0)
    assert voice["f1"] == pytest.approx(2 / 3)
    assert voice["f1_2class"] == pytest.approx(11 / 15)
    assert voice["average_precision"] == pytest.approx(1.0)
    assert (voice["support_pos"], voice["support_neg"]) == (1, 3)
    assert piano["threshold"] == voice["threshold"] == 0.5


def test_hand_fixture_evaluate():
    res = metrics.evaluate(Y_TRUE, Y_MASK, PROBS, CLASSES)
    assert list(res) == ["macro_f1", "micro_f1", "macro_f1_2class", "mean_ap", "macro_precision",
                         "macro_recall", "micro_precision", "micro_recall", "n_labelled",
                         "n_positive", "per_class"]
    assert res["macro_f1"] == pytest.approx((2 / 5 + 2 / 3) / 2)
    assert res["micro_f1"] == pytest.approx(1 / 2)
    assert res["micro_precision"] == pytest.approx(1 / 2)
    assert res["micro_recall"] == pytest.approx(1 / 2)
    assert res["macro_f1_2class"] == pytest.approx((2 / 5 + 11 / 15) / 2)
    assert res["mean_ap"] == pytest.approx((29 / 36 + 1) / 2)
    assert res["macro_precision"] == pytest.approx(1 / 2)
    assert res["macro_recall"] == pytest.approx((1 / 3 + 1) / 2)
    assert (res["n_labelled"], res["n_positive"]) == (9, 4)
    assert len(res["per_class"]) == 2


def test_per_class_threshold_array():
    # piano at 0.45 also takes the 0.5 row: TP=2 FP=1 FN=1; voice at 0.9: TP=1 FP=0 FN=0.
    piano, voice = metrics.per_class(Y_TRUE, Y_MASK, PROBS, CLASSES, threshold=np.array([0.45, 0.9]))
    assert (piano["tp"], piano["fp"], piano["fn"]) == (2, 1, 1)
    assert piano["f1"] == pytest.approx(2 / 3)
    assert (voice["tp"], voice["fp"], voice["fn"]) == (1, 0, 0)
    assert voice["f1"] == pytest.approx(1.0)
    assert (piano["threshold"], voice["threshold"]) == (0.45, 0.9)


def test_tune_thresholds_hand():
    # piano F1 by threshold: [0.05,0.1) 6/8, [0.1,0.4) 6/7, [0.4,0.5) 4/6 -> grid best 0.10..0.35,
    # closest to 0.5 is 0.35. voice: F1 = 1 for t in [0.8, 0.95) -> 0.80 (closest to 0.5).
    # drums: labelled but no positive -> stays 0.5.
    y_true = np.c_[Y_TRUE, np.zeros(6)]
    y_mask = np.c_[Y_MASK, np.ones(6, bool)]
    probs = np.c_[PROBS, np.linspace(0, 1, 6)]
    thr = metrics.tune_thresholds(y_true, y_mask, probs)
    assert thr.shape == (3,)
    np.testing.assert_allclose(thr, [0.35, 0.8, 0.5])
    # A custom grid: 0.2 (F1 6/7) beats 0.45 (F1 4/6) for piano. For voice, 0.2 predicts
    # rows 0, 1, 3 (F1 2/4) and 0.45 rows 1, 3 (F1 2/3), so 0.45.
    np.testing.assert_allclose(metrics.tune_thresholds(Y_TRUE, Y_MASK, PROBS, grid=[0.2, 0.45]), [0.2, 0.45])


def test_tune_thresholds_tie_prefers_lower_when_equidistant():
    y_true = np.array([[1.0], [0.0]])
    probs = np.array([[0.9], [0.1]])
    thr = metrics.tune_thresholds(y_true, np.ones((2, 1), bool), probs, grid=[0.3, 0.7])
    assert thr[0] == 0.3


# ----------------------------------------------------------------------------- sklearn reference
def _random_case(seed: int, n: int = 300, c: int = 6):
    rng = np.random.default_rng(seed)
    y_true = rng.choice([0.0, 0.2, 0.5, 0.8, 1.0], size=(n, c), p=[0.4, 0.1, 0.1, 0.1, 0.3])
    y_mask = rng.random((n, c)) < 0.6
    # Rounded probs give ties and exact 0.5 values, the cases where conventions differ.
    probs = np.round(np.clip(0.35 * (y_true >= 0.5) + 0.65 * rng.random((n, c)), 0, 1), 2)
    probs[: n // 10, 0] = 0.5
    y_mask[:, -1] &= y_true[:, -1] < 0.5          # last class: labelled negatives only
    return y_true, y_mask, probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_sklearn(seed):
    y_true, y_mask, probs = _random_case(seed)
    classes = [f"c{i}" for i in range(y_true.shape[1])]
    res = metrics.evaluate(y_true, y_mask, probs, classes)
    all_t, all_p = [], []
    f1s, ps, rs, f2s, aps = [], [], [], [], []
    for c, row in enumerate(res["per_class"]):
        m = y_mask[:, c]
        t = (y_true[m, c] >= 0.5).astype(int)
        # sklearn's predict for a binary probabilistic classifier: argmax over [1 - p, p].
        pred = np.argmax(np.stack([1 - probs[m, c], probs[m, c]], axis=1), axis=1)
        p, r, f, _ = precision_recall_fscore_support(t, pred, average="binary", zero_division=0)
        f2 = f1_score(t, pred, average="macro", zero_division=0)
        assert row["precision"] == pytest.approx(p)
        assert row["recall"] == pytest.approx(r)
        assert row["f1"] == pytest.approx(f)
        assert row["f1_2class"] == pytest.approx(f2)
        if t.any():
            ap = average_precision_score(t, probs[m, c])
            assert row["average_precision"] == pytest.approx(ap)
            aps.append(ap)
        else:
            assert math.isnan(row["average_precision"])
        f1s.append(f), ps.append(p), rs.append(r), f2s.append(f2)
        all_t.append(t), all_p.append(pred)
    t, pred = np.concatenate(all_t), np.concatenate(all_p)
    assert res["micro_f1"] == pytest.approx(f1_score(t, pred, zero_division=0))
    assert res["macro_f1"] == pytest.approx(np.mean(f1s))
    assert res["macro_precision"] == pytest.approx(np.mean(ps))
    assert res["macro_recall"] == pytest.approx(np.mean(rs))
    assert res["macro_f1_2class"] == pytest.approx(np.mean(f2s))
    assert res["mean_ap"] == pytest.approx(np.mean(aps))
    assert len(aps) == y_true.shape[1] - 1            # the negatives-only class is skipped
    assert res["n_labelled"] == int(y_mask.sum()) and res["n_positive"] == int(t.sum())


def test_sklearn_multilabel_equivalence_without_mask():
    y_true, _, probs = _random_case(5)
    mask = np.ones_like(y_true, dtype=bool)
    res = metrics.evaluate(y_true, mask, probs, list("abcdef"))
    yt, yp = (y_true >= 0.5).astype(int), (probs > 0.5).astype(int)
    assert res["macro_f1"] == pytest.approx(f1_score(yt, yp, average="macro", zero_division=0))
    assert res["micro_f1"] == pytest.approx(f1_score(yt, yp, average="micro", zero_division=0))
    assert res["mean_ap"] == pytest.approx(average_precision_score(yt, probs, average="macro"))


def test_average_precision_matches_sklearn_with_ties():
    rng = np.random.default_rng(7)
    for _ in range(20):
        y = rng.random(40) < 0.3
        y[0] = True
        s = np.round(rng.random(40), 1)
        assert metrics.average_precision(y, s) == pytest.approx(average_precision_score(y, s))
    assert math.isnan(metrics.average_precision(np.zeros(3, bool), np.ones(3)))


def test_unlabelled_entries_do_not_matter():
    y_true, y_mask, probs = _random_case(3)
    ref = metrics.evaluate(y_true, y_mask, probs, list("abcdef"))
    rng = np.random.default_rng(11)
    y2, p2 = y_true.copy(), probs.copy()
    y2[~y_mask] = np.nan
    p2[~y_mask] = rng.random(int((~y_mask).sum()))
    _assert_same(metrics.evaluate(y2, y_mask, p2, list("abcdef")), ref)
    np.testing.assert_array_equal(metrics.tune_thresholds(y2, y_mask, p2),
                                  metrics.tune_thresholds(y_true, y_mask, probs))


def _assert_same(a, b) -> None:
    """Exact equality of two evaluate() results, NaN equal to NaN."""
    assert list(a) == list(b)
    for k in a:
        if k == "per_class":
            for ra, rb in zip(a[k], b[k]):
                for kk in ra:
                    if isinstance(ra[kk], float) and math.isnan(ra[kk]):
                        assert math.isnan(rb[kk])
                    else:
                        assert ra[kk] == rb[kk], kk
        elif isinstance(a[k], float) and math.isnan(a[k]):
            assert math.isnan(b[k]), k
        else:
            assert a[k] == b[k], k


def test_degenerate_classes():
    # c0: no labelled entry at all; c1: all-negative, all predicted negative (sklearn macro = 1.0);
    # c2: all-negative with a false positive.
    y_true = np.zeros((4, 3))
    y_mask = np.array([[0, 1, 1]] * 4, dtype=bool)
    probs = np.array([[0.9, 0.1, 0.9], [0.9, 0.2, 0.1], [0.9, 0.3, 0.2], [0.9, 0.4, 0.3]])
    rows = metrics.per_class(y_true, y_mask, probs, ["c0", "c1", "c2"])
    assert all(math.isnan(rows[0][k]) for k in ("precision", "recall", "f1", "f1_2class", "average_precision"))
    assert rows[1]["f1"] == 0.0 and rows[1]["f1_2class"] == pytest.approx(
        f1_score([0] * 4, [0] * 4, average="macro", zero_division=0))
    assert rows[2]["f1_2class"] == pytest.approx(
        f1_score([0] * 4, [1, 0, 0, 0], average="macro", zero_division=0))
    res = metrics.evaluate(y_true, y_mask, probs, ["c0", "c1", "c2"])
    assert math.isnan(res["mean_ap"]) and res["macro_f1"] == 0.0
    assert res["macro_f1_2class"] == pytest.approx((rows[1]["f1_2class"] + rows[2]["f1_2class"]) / 2)


def test_instruments_without_labelled_entries_leave_the_macro_averages():
    # c0 is never labelled (e.g. a class the SoundFont cannot render); c1 is predicted perfectly.
    y_true = np.array([[0, 1], [0, 0], [0, 1]], dtype=float)
    y_mask = np.array([[0, 1]] * 3, dtype=bool)
    probs = np.array([[0.9, 0.8], [0.9, 0.2], [0.9, 0.7]])
    res = metrics.evaluate(y_true, y_mask, probs, ["c0", "c1"])
    assert res["macro_f1"] == 1.0 and res["macro_precision"] == 1.0 and res["macro_recall"] == 1.0
    assert metrics.f1_summary(y_true, y_mask, probs) == (1.0, 1.0)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(y_true=a["y_true"][:, :1]), "shape mismatch"),
    (lambda a: a.update(probs=a["probs"][0]), "probs must be a 2-D"),
    (lambda a: a.update(classes=["piano"]), "classes has 1 names but the arrays have 2 columns"),
    (lambda a: a.update(y_mask=a["y_mask"].astype(float) * 0.5), "y_mask must be boolean"),
    (lambda a: a["y_true"].__setitem__((0, 0), np.nan), "y_true has NaN at labelled entries"),
    (lambda a: a["y_true"].__setitem__((0, 0), 1.5), r"y_true must lie in \[0, 1\]"),
    (lambda a: a["probs"].__setitem__((5, 1), np.nan), "probs contains NaN"),
    (lambda a: a["probs"].__setitem__((5, 1), -0.1), r"probs must lie in \[0, 1\]"),
    (lambda a: a.update(threshold=[0.5, 0.5, 0.5]), r"threshold must be a scalar or have shape \(2,\)"),
    (lambda a: a.update(threshold=1.5), r"threshold values must lie in \[0, 1\]"),
])
def test_validation_errors(change, message):
    args = dict(y_true=Y_TRUE.copy(), y_mask=Y_MASK.copy(), probs=PROBS.copy(), classes=CLASSES, threshold=0.5)
    change(args)
    with pytest.raises(ValueError, match=message):
        metrics.evaluate(**args)


def test_integer_mask_accepted_and_grid_validated():
    res = metrics.evaluate(Y_TRUE, Y_MASK.astype(int), PROBS, CLASSES)
    assert res["micro_f1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="grid must be a non-empty 1-D array"):
        metrics.tune_thresholds(Y_TRUE, Y_MASK, PROBS, grid=[])
    with pytest.raises(ValueError, match=r"grid values must lie in \[0, 1\]"):
        metrics.tune_thresholds(Y_TRUE, Y_MASK, PROBS, grid=[0.5, 2.0])


@pytest.mark.parametrize("seed", [0, 4])
def test_f1_summary_matches_evaluate(seed):
    y_true, y_mask, probs = _random_case(seed)
    res = metrics.evaluate(y_true, y_mask, probs, list("abcdef"), threshold=0.3)
    macro, micro = metrics.f1_summary(y_true, y_mask, probs, threshold=0.3)
    assert macro == pytest.approx(res["macro_f1"]) and micro == pytest.approx(res["micro_f1"])
    assert metrics.f1_summary(Y_TRUE, Y_MASK, PROBS) == pytest.approx(((2 / 5 + 2 / 3) / 2, 1 / 2))
