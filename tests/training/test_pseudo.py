"""Pseudo-labels from a teacher run (--teacher, --pseudo-precision)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file

from instrec._io import InstrecError
from instrec.data.openmic import load_split, validation_split
from instrec.models.inference import run_model
from instrec.run import load_model
from instrec.training.config import TrainConfig
from instrec.training.loop import train
from instrec.training.pseudo import calibrated_thresholds, pseudo_labels


def test_pseudo_labels_by_hand():
    targets = np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    mask = np.array([[True, True, False, False]])
    probs = np.array([[0.05, 0.99, 0.95, 0.5]], dtype=np.float32)
    # labelled entries keep their answer whatever the teacher says; 0.95 >= 0.9 -> positive;
    # 0.5 is neither >= 0.9 nor <= 0.1 -> stays unknown
    t, m = pseudo_labels(targets, mask, probs, 0.9, 0.1)
    assert t.tolist() == [[1.0, 0.0, 1.0, 0.0]] and m.tolist() == [[True, True, True, False]]
    # per-class thresholds: class 3 gets 0.4 below which it is negative
    t, m = pseudo_labels(targets, mask, probs, np.array([0.9, 0.9, 0.96, 0.9]), np.array([0.1, 0.1, 0.1, 0.6]))
    assert t.tolist() == [[1.0, 0.0, 0.0, 0.0]] and m.tolist() == [[True, True, False, True]]


def test_calibrated_thresholds_by_hand():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.2])
    y = np.array([1, 1, 0, 1, 0, 0], dtype=np.float32)
    probs, y_true, mask = np.stack([p, p], 1), np.stack([y, y], 1), np.ones((6, 2), bool)
    mask[0, 1] = False  # class 1 loses its top entry: 0.8, 0.7 -> one right of two
    pos, neg = calibrated_thresholds(y_true, mask, probs, 0.9, min_support=2)
    # class 0: from the top 0.9, 0.8 are right (2/2), with 0.7 only 2/3; from the bottom 0.2, 0.3 (2/2)
    assert pos[0] == 0.8 and neg[0] == 0.3
    # class 1: 0.8 then 0.7 (wrong): no top run of >= 2 with share >= 0.9
    assert pos[1] == np.inf and neg[1] == 0.3
    # precision 0.75: class 0 reaches 0.6 (3 of 4) from the top and 0.7 (3 of 4) from the bottom:
    # they overlap, so the class gets neither
    pos, neg = calibrated_thresholds(y_true, mask, probs, 0.75, min_support=1)
    assert pos[0] == np.inf and neg[0] == -np.inf
    with pytest.raises(ValueError, match=r"precision must be in \(0.5, 1\]"):
        calibrated_thresholds(y_true, mask, probs, 0.5)


def _cfg(data, out, **kw) -> TrainConfig:
    return TrainConfig(**{"data": str(data), "out": str(out), "model": "att", "epochs": 3, "seed": 3, **kw})


@pytest.fixture(scope="module")
def teacher(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    train(_cfg(tiny_dataset, out), progress=False)
    return out


def test_student_records_the_pseudo_labels_it_trained_on(tiny_dataset, teacher, tmp_path):
    out = tmp_path / "student"
    train(_cfg(tiny_dataset, out, teacher=str(teacher), pseudo_precision=0.6, epochs=1), progress=False)
    record = json.loads((out / "config.json").read_text())["pseudo_labels"]
    # independently: thresholds from the teacher's validation clips, applied to the student's training clips
    data = load_split(tiny_dataset, "train")
    rows, _ = validation_split(len(data), 0.15, 3)
    model = load_model(teacher)[0]
    keys = set((teacher / "validation-keys.csv").read_text().split())
    val = data.subset([i for i, k in enumerate(data.sample_key) if k in keys])
    pos, neg = calibrated_thresholds(val.Y_true, val.Y_mask, run_model(model, val.X).clip, 0.6)
    assert record["positive_thresholds"] == [None if np.isinf(t) else pytest.approx(t) for t in pos]
    part = data.subset(rows)
    probs = run_model(model, part.X).clip
    unknown = ~part.Y_mask
    assert record["added_positive"] == int((unknown & (probs >= pos)).sum())
    assert record["added_negative"] == int((unknown & (probs < pos) & (probs <= neg)).sum())
    assert record["added_positive"] + record["added_negative"] > 0
    assert record["labelled_after"] == record["labelled_before"] + record["added_positive"] + record["added_negative"]


def test_student_resumes_bit_identically_and_refuses_a_changed_teacher(tiny_dataset, teacher, tmp_path):
    kw = {"teacher": str(teacher), "pseudo_precision": 0.6, "label_balance": 0.5, "mixup": 0.2, "mixup_labels": "known"}
    train(_cfg(tiny_dataset, tmp_path / "straight", **kw), progress=False)
    train(_cfg(tiny_dataset, tmp_path / "split", **{**kw, "epochs": 2}), progress=False)
    train(_cfg(tiny_dataset, tmp_path / "split", **kw), resume=True, progress=False)
    a = load_file(str(tmp_path / "straight" / "last.safetensors"))
    b = load_file(str(tmp_path / "split" / "last.safetensors"))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)

    other = tmp_path / "teacher2"
    shutil.copytree(teacher, other)
    kw["teacher"] = str(other)
    train(_cfg(tiny_dataset, tmp_path / "s2", **{**kw, "epochs": 1}), progress=False)
    train(_cfg(tiny_dataset, tmp_path / "t2", epochs=1, seed=9), progress=False)
    for name in ("model.safetensors", "config.json", "integrity.json"):  # the teacher retrained
        shutil.copy(tmp_path / "t2" / name, other / name)
    with pytest.raises(InstrecError, match="teacher's weights changed"):
        train(_cfg(tiny_dataset, tmp_path / "s2", **kw), resume=True, progress=False)


def test_bad_teacher_and_settings(tiny_dataset, tmp_path):
    with pytest.raises(InstrecError, match="not a run directory|not found"):
        train(_cfg(tiny_dataset, tmp_path / "s", teacher=str(tmp_path / "nope")), progress=False)
    with pytest.raises(InstrecError, match=r"pseudo-label precision must be in \(0.5, 1\]"):
        _cfg(tiny_dataset, tmp_path / "s", pseudo_precision=0.4).validate()
    with pytest.raises(InstrecError, match=r"label balance exponent must be in \[0, 1\]"):
        _cfg(tiny_dataset, tmp_path / "s", label_balance=2.0).validate()
