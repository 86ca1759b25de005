"""A random-forest run whose saved trees were damaged or crafted: refused at load with one line
naming the file and the array, never an IndexError, a hang or a probability outside [0, 1]."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from robust_helpers import SRC, assert_one_line_error, cli
from safetensors.numpy import load_file, save_file

from instrec._io import InstrecError
from instrec.models.forest import RandomForestBaseline
from instrec.run import INTEGRITY_FILE, MODEL_FILE, load_model


@pytest.fixture(scope="module")
def rf_run(data128, tmp_path_factory):
    from instrec.training.config import TrainConfig
    from instrec.training.loop import train

    out = tmp_path_factory.mktemp("rf") / "run"
    train(TrainConfig(data=str(data128), out=str(out), model="rf", rf_trees=3, rf_max_depth=3, seed=0, threads=1),
          progress=False)
    return out


@pytest.fixture
def rf_copy(rf_run, tmp_path):
    """A copy without its integrity record, as a run from before records: the trees' own checks answer."""
    run = shutil.copytree(rf_run, tmp_path / "run")
    (run / INTEGRITY_FILE).unlink()
    return run


def _first_inner(a) -> int:
    return int(np.flatnonzero(a["left"] >= 0)[0])


def _edit(run, change) -> None:
    arrays = load_file(str(run / MODEL_FILE))
    change(arrays)
    save_file(arrays, str(run / MODEL_FILE))


def _set(key, index_fn, value):
    def change(a):
        a[key] = a[key].copy()
        a[key][index_fn(a)] = value
    return change


CASES = {
    "child out of range": (_set("left", _first_inner, 10**6), "'left'"),
    "child negative": (_set("right", _first_inner, -7), "'right'"),
    "self loop": (lambda a: _set("left", _first_inner, _first_inner(a))(a), "'left'"),
    "back edge": (lambda a: _set("right", lambda b: int(np.flatnonzero(b["left"] >= 0)[-1]), 0)(a), "'right'"),
    "feature out of range": (_set("feature", _first_inner, 128), "'feature'"),
    "leaf value 2.0": (_set("value", lambda a: int(np.flatnonzero(a["left"] < 0)[0]), 2.0), "'value'"),
    "missing roots": (lambda a: a.pop("roots"), "'roots' missing"),
    "root out of range": (_set("roots", lambda a: (0, 0), 10**6), "'roots'"),
    "wrong class count": (lambda a: a.update(roots=a["roots"][:3], constant=a["constant"][:3]), "3 classes but"),
    "short params": (lambda a: a.update(params=a["params"][:2]), "'params'"),
    "constant 1.5": (lambda a: a.update(constant=np.where(np.isnan(a["constant"]), np.nan, 1.5)
                                        if not np.isnan(a["constant"]).all() else np.r_[1.5, a["constant"][1:]]),
                     "'constant'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_trees_are_refused_at_load(rf_copy, case):
    change, needle = CASES[case]
    _edit(rf_copy, change)
    assert_one_line_error(*cli("evaluate", str(rf_copy)), MODEL_FILE, needle)


def test_a_self_loop_cannot_hang_prediction(rf_copy):
    """In a subprocess with a timeout: the descent of a tree whose node points to itself never ended."""
    _edit(rf_copy, CASES["self loop"][0])
    code = (f"from instrec.run import load_model\nimport numpy as np\n"
            f"m, _ = load_model({str(rf_copy)!r})\nm.predict_proba(np.full((2, 10, 128), 60.0))\n")
    proc = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(SRC), "PATH": ""}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and "InstrecError" in proc.stderr and "'left'" in proc.stderr, proc.stderr


def test_intact_trees_still_load_and_agree_with_their_arrays(rf_run):
    model, config = load_model(rf_run)
    again = RandomForestBaseline.from_arrays(model.to_arrays(), "x", n_classes=len(config["classes"]), n_features=128)
    x = np.random.default_rng(0).uniform(0, 255, (5, 10, 128))
    p = again.predict_proba(x)
    assert np.array_equal(p, model.predict_proba(x)) and ((p >= 0) & (p <= 1)).all()


def test_a_changed_forest_with_its_record_is_refused_as_changed(rf_run, tmp_path):
    run = shutil.copytree(rf_run, tmp_path / "run")
    _edit(run, CASES["leaf value 2.0"][0])
    with pytest.raises(InstrecError, match="model.safetensors: changed since instrec wrote it"):
        load_model(run)
